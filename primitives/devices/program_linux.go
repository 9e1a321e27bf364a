package devices

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// What the kernel hands a BPF_PROG_TYPE_CGROUP_DEVICE program (struct
// bpf_cgroup_dev_ctx, include/uapi/linux/bpf.h): access_type, whose low
// 16 bits are the device type and high 16 the access, then major, minor.
const (
	ctxAccessType = 0
	ctxMajor      = 4
	ctxMinor      = 8

	devBlock = 1 // BPF_DEVCG_DEV_BLOCK
	devChar  = 2 // BPF_DEVCG_DEV_CHAR

	accMknod = 1 // BPF_DEVCG_ACC_MKNOD
	accRead  = 2 // BPF_DEVCG_ACC_READ
	accWrite = 4 // BPF_DEVCG_ACC_WRITE
)

func accessBits(access string) int32 {
	var b int32
	for _, c := range access {
		b |= map[rune]int32{'r': accRead, 'w': accWrite, 'm': accMknod}[c]
	}
	return b
}

// Instructions compiles rules into a device program with the semantics
// of Allows: the rules are tried last first, the first that matches
// returns 1 (allow) or 0 (deny), and none matching returns 1.
func Instructions(rules []Rule) asm.Instructions {
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, ctxAccessType, asm.Word),
		asm.And.Imm(asm.R2, 0xffff), // R2: type
		asm.LoadMem(asm.R3, asm.R1, ctxAccessType, asm.Word),
		asm.RSh.Imm(asm.R3, 16), // R3: access asked for
		asm.LoadMem(asm.R4, asm.R1, ctxMajor, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, ctxMinor, asm.Word),
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		next := fmt.Sprintf("rule%d", i-1)
		var block asm.Instructions
		if r.Type != 'a' {
			typ := int32(devChar)
			if r.Type == 'b' {
				typ = devBlock
			}
			block = append(block, asm.JNE.Imm(asm.R2, typ, next))
		}
		if r.Major != Any {
			block = append(block, asm.JNE.Imm(asm.R4, int32(r.Major), next))
		}
		if r.Minor != Any {
			block = append(block, asm.JNE.Imm(asm.R5, int32(r.Minor), next))
		}
		mask := accessBits(r.Access)
		if r.Allow && mask != accRead|accWrite|accMknod {
			// Allow: every access asked for is granted.
			block = append(block, asm.Mov.Reg(asm.R6, asm.R3), asm.And.Imm(asm.R6, ^mask), asm.JNE.Imm(asm.R6, 0, next))
		} else if !r.Allow && mask != accRead|accWrite|accMknod {
			// Deny: one of the accesses asked for is refused.
			block = append(block, asm.Mov.Reg(asm.R6, asm.R3), asm.And.Imm(asm.R6, mask), asm.JEq.Imm(asm.R6, 0, next))
		}
		verdict := int32(0)
		if r.Allow {
			verdict = 1
		}
		unconditional := len(block) == 0
		block = append(block, asm.Mov.Imm(asm.R0, verdict), asm.Return())
		block[0] = block[0].WithSymbol(fmt.Sprintf("rule%d", i))
		insns = append(insns, block...)
		if unconditional {
			// Every device matches: the rules before it are never reached,
			// and the verifier refuses unreachable instructions.
			return insns
		}
	}
	return append(insns, asm.Mov.Imm(asm.R0, 1).WithSymbol("rule-1"), asm.Return())
}

// Load loads rules as a device program into the kernel: bpf(BPF_PROG_LOAD).
func Load(rules []Rule) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "stepbox_dev",
		Type:         ebpf.CGroupDevice,
		Instructions: Instructions(rules),
		License:      "Apache-2.0",
	})
	if err != nil {
		return nil, fmt.Errorf("bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE): %w", err)
	}
	return prog, nil
}

// Attach attaches prog to the cgroup v2 directory dir, beside any program
// there (BPF_F_ALLOW_MULTI: a device must pass every one), and detaches
// old, the program it replaces, if any: bpf(BPF_PROG_ATTACH),
// bpf(BPF_PROG_DETACH).
func Attach(dir string, prog *ebpf.Program, old ebpf.ProgramID) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	err = link.RawAttachProgram(link.RawAttachProgramOptions{
		Target: int(f.Fd()), Program: prog, Attach: ebpf.AttachCGroupDevice, Flags: unix.BPF_F_ALLOW_MULTI,
	})
	if err != nil {
		return fmt.Errorf("bpf(BPF_PROG_ATTACH, %s, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI): %w", dir, err)
	}
	if old == 0 {
		return nil
	}
	return Detach(dir, old)
}

// Detach detaches the program id from the cgroup v2 directory dir.
func Detach(dir string, id ebpf.ProgramID) error {
	prog, err := ebpf.NewProgramFromID(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil // gone with its cgroup
	}
	if err != nil {
		return fmt.Errorf("bpf(BPF_PROG_GET_FD_BY_ID, %d): %w", id, err)
	}
	defer prog.Close()
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: int(f.Fd()), Program: prog, Attach: ebpf.AttachCGroupDevice}); err != nil {
		return fmt.Errorf("bpf(BPF_PROG_DETACH, %s, BPF_CGROUP_DEVICE): %w", dir, err)
	}
	return nil
}

// Attached lists the IDs of the device programs attached to the cgroup
// v2 directory dir: bpf(BPF_PROG_QUERY).
func Attached(dir string) ([]ebpf.ProgramID, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return nil, fmt.Errorf("bpf(BPF_PROG_QUERY, %s, BPF_CGROUP_DEVICE): %w", dir, err)
	}
	var ids []ebpf.ProgramID
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids, nil
}

package primitives

/*
#include "executor.h"
*/
import "C"

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"stepbox/primitives/step"
)

// Security goes to the executor as one struct xsec (executor.h) in hex,
// the last string of XOP_SPAWN or an argument of __enter; what the
// executor will call with it is securityCalls, the list `explain` shows.

const (
	secStepDecode        = C.XSEC_STEP_DECODE
	secStepRlimit        = C.XSEC_STEP_RLIMIT
	secStepSeccomp       = C.XSEC_STEP_SECCOMP
	secStepBounding      = C.XSEC_STEP_BOUNDING
	secStepNNP           = C.XSEC_STEP_NNP
	secStepKeepCaps      = C.XSEC_STEP_KEEPCAPS
	secStepClearKeepCaps = C.XSEC_STEP_CLEARKEEPCAPS
	secStepCapset        = C.XSEC_STEP_CAPSET
	secStepAmbientClear  = C.XSEC_STEP_AMBIENT_CLEAR
	secStepAmbientRaise  = C.XSEC_STEP_AMBIENT_RAISE
	secStepCgroup        = C.XSEC_STEP_CGROUP
	// The uid and gid change of op_spawn (executor.c), between them.
	spawnStepSetgroups = 8
	spawnStepSetresgid = 9
	spawnStepSetresuid = 10
)

// wire is s as the executor reads it.
func (s Security) wire() string {
	var buf bytes.Buffer
	h := xsec{
		Cap:     [C.XCAP_SETS]uint64{s.Caps.Bounding, s.Caps.Permitted, s.Caps.Effective, s.Caps.Inheritable, s.Caps.Ambient},
		LastCap: uint32(LastCap()),
		NRlimit: uint32(len(s.Rlimits)),
		NFilter: uint32(len(s.Seccomp.Program)),
	}
	if s.CapsSet {
		h.Flags |= C.XSEC_CAPS
	}
	if s.NoNewPrivs {
		h.Flags |= C.XSEC_NNP
	}
	binary.Write(&buf, binary.NativeEndian, h)
	for _, r := range s.Rlimits {
		binary.Write(&buf, binary.NativeEndian, xrlimit{Resource: uint32(r.Resource), Cur: r.Cur, Max: r.Max})
	}
	// struct sock_filter is x/net/bpf's RawInstruction: u16 op, u8 jt,
	// u8 jf, u32 k. Appended by hand: binary.Write's reflection cost
	// 0.2 ms a command for Docker's 541 instructions.
	raw := buf.Bytes()
	for _, in := range s.Seccomp.Program {
		raw = binary.NativeEndian.AppendUint16(raw, in.Op)
		raw = append(raw, in.Jt, in.Jf)
		raw = binary.NativeEndian.AppendUint32(raw, in.K)
	}
	return hex.EncodeToString(raw)
}

// secCall is one call of the settings, with the executor's step number.
type secCall struct {
	code int
	call string
}

// securityCalls lists the calls the command's process makes for s, in
// the executor's order (executor.c); ids is the uid and gid it becomes
// (an image's User), or nil.
func securityCalls(s Security, ids *IDs) []secCall {
	var out []secCall
	add := func(code int, call string) { out = append(out, secCall{code, call}) }
	for _, r := range s.Rlimits {
		add(secStepRlimit, fmt.Sprintf("setrlimit(%d, {rlim_cur=%d, rlim_max=%d})", r.Resource, r.Cur, r.Max))
	}
	filter := fmt.Sprintf("seccomp(SECCOMP_SET_MODE_FILTER, 0, {len=%d, filter=…})", len(s.Seccomp.Program))
	if s.Seccomp.Source != "" && !s.NoNewPrivs {
		add(secStepSeccomp, filter+"   # first, while the process still has CAP_SYS_ADMIN: without no_new_privs the kernel wants it")
	}
	if s.CapsSet {
		if dropped := DecodeCaps(AllCaps() &^ s.Caps.Bounding); len(dropped) > 0 {
			add(secStepBounding, fmt.Sprintf("prctl(PR_CAPBSET_DROP, %s, 0, 0, 0)   # once for each of the %d not kept: %s", dropped[0], len(dropped), strings.Join(dropped, " ")))
		}
	}
	if s.NoNewPrivs {
		add(secStepNNP, "prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)   # execve can no longer add privileges: setuid bits and file capabilities are ignored")
	}
	if s.CapsSet {
		add(secStepKeepCaps, "prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)   # keep the permitted set through a uid change")
	}
	if ids != nil {
		add(spawnStepSetgroups, "setgroups(0, NULL)")
		add(spawnStepSetresgid, fmt.Sprintf("setresgid(%d, %d, %d)", ids.GID, ids.GID, ids.GID))
		add(spawnStepSetresuid, fmt.Sprintf("setresuid(%d, %d, %d)", ids.UID, ids.UID, ids.UID))
	}
	if s.CapsSet {
		c := s.Caps
		add(secStepClearKeepCaps, "prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)")
		add(secStepCapset, fmt.Sprintf("capset({_LINUX_CAPABILITY_VERSION_3, 0}, {effective=%#016x, permitted=%#016x, inheritable=%#016x})   # %d effective",
			c.Effective, c.Permitted, c.Inheritable, len(DecodeCaps(c.Effective))))
		add(secStepAmbientClear, "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)")
		for _, n := range DecodeCaps(c.Ambient) {
			add(secStepAmbientRaise, fmt.Sprintf("prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, %s, 0, 0)", n))
		}
	}
	if s.Seccomp.Source != "" && s.NoNewPrivs {
		add(secStepSeccomp, filter+"   # last before execve: under no_new_privs any process may install one")
	}
	return out
}

// securityFailure is the index in calls of the call with step number
// code, or -1.
func securityFailure(calls []secCall, code uint32) int {
	for i, c := range calls {
		if c.code == int(code) {
			return i
		}
	}
	return -1
}

// securityError says which call of the settings failed, and what to do.
func securityError(call string, err error) error {
	e := &step.SyscallError{Call: call, Err: err}
	switch {
	case strings.HasPrefix(call, "seccomp("):
		return fmt.Errorf("%w: the kernel refused the filter (seccomp(2)): without no_new_privs the process needs CAP_SYS_ADMIN; `nnp` first", e)
	case strings.HasPrefix(call, "capset("):
		return fmt.Errorf("%w: a set may hold only capabilities of the bounding set and the permitted set (capabilities(7))", e)
	}
	return e
}

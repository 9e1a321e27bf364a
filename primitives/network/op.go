package network

import (
	"github.com/google/nftables"

	"stepbox/primitives/step"
)

// Op is one network step under way: the record it writes, the ledger it
// writes undos to before making anything, and whether it is only a plan
// (`explain`): a plan reads the kernel as the step would and records
// every request it would send, but sends none and records no undo.
type Op struct {
	St   *step.Step
	Rec  Record
	Plan bool
	// Session is the ID of the session the step runs in: the links and
	// the table it makes are marked with it (owner.go).
	Session string
}

// record writes u to the ledger before the resource exists.
func (op *Op) record(u Undo) error {
	if op.Plan || op.Rec == nil {
		return nil
	}
	return op.Rec(u)
}

func (op *Op) Shell(lines ...string) { op.St.Shell = append(op.St.Shell, lines...) }

// Do sends one request, described by call, or plans it.
func (op *Op) Do(call string, fn func() error) error {
	if op.Plan {
		op.St.Plan(call)
		return nil
	}
	return op.St.Do(call, fn)
}

// flush sends an nf_tables batch; every message of it shares the batch's
// result.
func (op *Op) flush(c *nftables.Conn, calls []string) error {
	if op.Plan {
		for _, call := range calls {
			op.St.Plan(call)
		}
		return nil
	}
	err := c.Flush()
	for _, call := range calls {
		op.St.Record(call, err)
	}
	if err != nil {
		return &step.SyscallError{Call: "sendmsg(NETLINK_NETFILTER, NFNL_MSG_BATCH_BEGIN … NFNL_MSG_BATCH_END)", Err: err}
	}
	return nil
}

package primitives

import (
	"strings"
	"testing"
)

func TestSysvipcListsEachObjectWithItsKeyAndCreator(t *testing.T) {
	msg := `       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
 237028440          1   644           0          0     0     0 65534 65534 65534 65534          0          0 1796596596
-1529281523          2   644           0          0     0     0     0     0     0     0          0          0 1796596597
`
	got, err := ParseSysvipc(strings.NewReader(msg), "message queue")
	if err != nil {
		t.Fatal(err)
	}
	want := []IPCObject{
		{Kind: "message queue", ID: 1, Key: 0x0e20c458, CUID: 65534},
		{Kind: "message queue", ID: 2, Key: 0xa4d9040d, CUID: 0},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if c := got[1].RemoveCommand(); c != "ipcrm -q 2" {
		t.Errorf("remove command %q", c)
	}
	if made := NewIPCObjects(got[:1], got); len(made) != 1 || made[0].ID != 2 {
		t.Errorf("new objects: %+v", made)
	}
	if _, err := ParseSysvipc(strings.NewReader("key id\n1 2\n"), "message queue"); err == nil {
		t.Error("a header without cuid was taken")
	}
}

package primitives

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives/network"
)

// What a crashed session left that the sweep is about to undo, read from
// its ledgers and the live kernel before teardown: so that `stepbox
// cleanup` and the next session can say what they removed.

// leftovers lists, for the dead session in dir, its processes still
// alive, a line each and their PIDs, and the network resources still
// there.
func leftovers(dir, session string) (procs, net []string, pids []int) {
	alive := map[int]string{}
	defer func() {
		pids = slices.Sorted(maps.Keys(alive))
		for _, pid := range pids {
			procs = append(procs, alive[pid])
		}
	}()
	ledgers := map[string]string{filepath.Join(dir, "ledger.jsonl"): ""} // ledger → its box
	boxes, _ := os.ReadDir(filepath.Join(dir, "boxes"))
	for _, b := range boxes {
		ledgers[filepath.Join(dir, "boxes", b.Name(), "ledger.jsonl")] = b.Name()
	}
	for _, path := range slices.Sorted(maps.Keys(ledgers)) {
		res, _ := readLedger(path)
		owner := netOwner(res, session)
		for _, r := range res {
			switch r.Kind {
			case ResProcess:
				// Only a process teardown will end: a line naming one
				// without the session's markers is refused (ledgerProcessOwn).
				if startedAt(r.PID) == r.Start && r.Start != 0 && sessionMarked(r.PID, session) {
					alive[r.PID] = processLine(r.PID, ledgers[path])
				}
			case ResProcesses:
				for _, p := range markedProcesses(session, r.Box) {
					alive[p.pid] = processLine(p.pid, r.Box)
				}
			case ResNet:
				var u network.Undo
				if json.Unmarshal(r.Net, &u) == nil {
					if what, ok := u.Pending(owner); ok {
						net = append(net, what)
					}
				}
			}
		}
	}
	return procs, net, nil // pids: set on the way out
}

func startedAt(pid int) uint64 {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0
	}
	st, err := p.Stat()
	if err != nil {
		return 0
	}
	return st.Starttime
}

// sessionMarked reports whether process pid carries session's markers,
// or has exited already (a zombie's environment is gone with its memory).
func sessionMarked(pid int, session string) bool {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return false
	}
	s, _, _ := markersOf(p)
	st, _ := procState(pid)
	return s == session || st == "Z"
}

// processLine names a process by its PID and command line.
func processLine(pid int, box string) string {
	line := fmt.Sprintf("ended PID %d", pid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(b) > 0 {
		line += " (" + strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")) + ")"
	} else {
		line += " (exiting already: its memory is gone)"
	}
	if box != "" {
		line += " of box " + box
	}
	return line
}

package soak

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// The messages the example activities log once per execution (package activities), with the
// calling instance and task.
var executionMessages = map[string]bool{
	"budget approved": true, "budget denied": true, "building permit issued": true,
	"stock reserved": true, "not enough stock": true, "payment processed": true,
	"SMS challenge sent": true,
}

// activityCounts are the activity executions found in the workers' logs.
type activityCounts struct {
	Tasks      int // activity tasks in the histories
	Executions int // executions of those tasks logged
	Duplicates int // executions beyond the first, per task
	Unlogged   int // tasks in a history with no execution logged
	Stray      int // executions of tasks no history holds
	Torn       int // log lines that are not JSON (a write cut by SIGKILL)
	Takeovers  int // partitions taken over from a worker that stopped heartbeating
}

// countExecutions reads the logs and compares the executions they record with the tasks.
func countExecutions(logs []string, verdicts []*verdict) (activityCounts, error) {
	var ac activityCounts
	execs := map[string]int{}
	for _, path := range logs {
		if err := scanLog(path, execs, &ac); err != nil {
			return ac, err
		}
	}
	for _, v := range verdicts {
		for id := range v.Tasks {
			ac.Tasks++
			n := execs[taskKey(v.ID, id)]
			delete(execs, taskKey(v.ID, id))
			ac.Executions += n
			if n == 0 {
				ac.Unlogged++
			} else {
				ac.Duplicates += n - 1
			}
		}
	}
	for _, n := range execs {
		ac.Stray += n
	}
	return ac, nil
}

func taskKey(instance string, task int) string { return fmt.Sprintf("%s#%d", instance, task) }

// scanLog counts the executions logged in one worker log.
func scanLog(path string, execs map[string]int, ac *activityCounts) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading worker log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var l struct {
			Component  string `json:"component"`
			InstanceID string `json:"instance_id"`
			TaskID     int    `json:"task_id"`
			Message    string `json:"message"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			ac.Torn++
			continue
		}
		if l.Message == "took over partition of a dead member" {
			ac.Takeovers++
		}
		if l.Component == "activities" && l.InstanceID != "" && executionMessages[l.Message] {
			execs[taskKey(l.InstanceID, l.TaskID)]++
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

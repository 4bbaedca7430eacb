package cli

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gavel-scheduler/gavel/proto/models"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) int64 { return testNow.Add(-d).UnixNano() }

func TestPrintListFormats(t *testing.T) {
	lrps := []*models.DesiredLRP{
		{ProcessGuid: "web", Domain: "apps", Instances: 3, MemoryMb: 256, DiskMb: 1024, Rootfs: "preloaded:cflinuxfs4"},
		{ProcessGuid: "worker-long-name", Domain: "jobs", Instances: 0, Rootfs: "docker:///busybox"},
	}
	actual := []*models.ActualLRP{
		{
			ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: "web", Index: 0, Domain: "apps"},
			ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "i-1", CellId: "cell-1"},
			ActualLrpNetInfo: &models.ActualLRPNetInfo{Address: "10.0.0.5", Ports: []*models.PortMapping{
				{ContainerPort: 8080, HostPort: 61001}, {ContainerPort: 2222, HostPort: 61002},
			}},
			State: models.ActualLRP_RUNNING,
			Since: ago(5*time.Minute + 3*time.Second),
		},
		{
			ActualLrpKey:   &models.ActualLRPKey{ProcessGuid: "web", Index: 1, Domain: "apps"},
			State:          models.ActualLRP_UNCLAIMED,
			PlacementError: "insufficient resources: memory",
			CrashCount:     2,
			Since:          ago(3 * time.Hour),
			Presence:       models.ActualLRP_ORDINARY,
		},
		{
			ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: "web", Index: 2, Domain: "apps"},
			ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "i-3", CellId: "cell-2"},
			State:                models.ActualLRP_CLAIMED,
			Since:                ago(72 * time.Hour),
			Presence:             models.ActualLRP_EVACUATING,
		},
	}
	tasks := []*models.Task{
		{TaskGuid: "t1", Domain: "jobs", State: models.Task_RUNNING, CellId: "cell-1"},
		{TaskGuid: "t2", Domain: "jobs", State: models.Task_COMPLETED, CellId: "cell-2", Failed: true, FailureReason: "exit status 2"},
		{TaskGuid: "t3", Domain: "jobs", State: models.Task_PENDING, RejectionReason: "no\ncell"},
	}
	cells := []*models.CellPresence{
		{CellId: "cell-1", Zone: "z1", RepAddress: "10.0.0.5:1800", Capacity: &models.CellCapacity{MemoryMb: 16384, DiskMb: 65536, Containers: 256}},
	}
	domains := []*models.Domain{
		{Domain: "apps"},
		{Domain: "jobs", Ttl: 120, ExpiresAt: testNow.Add(90 * time.Second).UnixNano()},
	}

	tests := []struct {
		name  string
		print func(*bytes.Buffer, format) error
		table string
		json  string
	}{
		{
			name:  "desired lrps",
			print: func(b *bytes.Buffer, f format) error { return printList(b, f, lrps, desiredLRPColumns()) },
			table: `
PROCESS_GUID      DOMAIN  INSTANCES  MEMORY  DISK    ROOTFS
web               apps    3          256MB   1024MB  preloaded:cflinuxfs4
worker-long-name  jobs    0          0       0       docker:///busybox
`,
			json: `
{"process_guid":"web","domain":"apps","instances":3,"rootfs":"preloaded:cflinuxfs4","memory_mb":256,"disk_mb":1024}
{"process_guid":"worker-long-name","domain":"jobs","rootfs":"docker:///busybox"}
`,
		},
		{
			name:  "actual lrps",
			print: func(b *bytes.Buffer, f format) error { return printList(b, f, actual, actualLRPColumns(testNow)) },
			table: `
PROCESS_GUID  INDEX  STATE                                       CELL    ADDRESS   PORTS                    CRASHES  SINCE   PRESENCE
web           0      RUNNING                                     cell-1  10.0.0.5  61001->8080,61002->2222  0        5m ago  ORDINARY
web           1      UNCLAIMED (insufficient resources: memory)  -       -         -                        2        3h ago  ORDINARY
web           2      CLAIMED                                     cell-2  -         -                        0        3d ago  EVACUATING
`,
		},
		{
			name:  "tasks",
			print: func(b *bytes.Buffer, f format) error { return printList(b, f, tasks, taskColumns()) },
			table: `
TASK_GUID  DOMAIN  STATE      CELL    FAILED  REASON
t1         jobs    RUNNING    cell-1  false   -
t2         jobs    COMPLETED  cell-2  true    exit status 2
t3         jobs    PENDING    -       false   no cell
`,
		},
		{
			name:  "cells",
			print: func(b *bytes.Buffer, f format) error { return printList(b, f, cells, cellColumns()) },
			table: `
CELL_ID  ZONE  REP_ADDRESS    MEMORY   DISK     CONTAINERS
cell-1   z1    10.0.0.5:1800  16384MB  65536MB  256
`,
			json: `
{"cell_id":"cell-1","rep_address":"10.0.0.5:1800","zone":"z1","capacity":{"memory_mb":16384,"disk_mb":65536,"containers":256}}
`,
		},
		{
			name:  "domains",
			print: func(b *bytes.Buffer, f format) error { return printList(b, f, domains, domainColumns(testNow)) },
			table: `
DOMAIN  TTL      EXPIRES
apps    forever  never
jobs    2m0s     in 1m
`,
		},
		{
			name:  "empty list",
			print: func(b *bytes.Buffer, f format) error { return printList(b, f, []*models.Task(nil), taskColumns()) },
			table: `
TASK_GUID  DOMAIN  STATE  CELL  FAILED  REASON
`,
			json: "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/table", func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.print(&b, formatTable); err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(tt.table, "\n"); b.String() != want {
				t.Errorf("table =\n%s\nwant\n%s", b.String(), want)
			}
		})
		if tt.json == "" {
			continue
		}
		t.Run(tt.name+"/json", func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.print(&b, formatJSON); err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(tt.json, "\n"); b.String() != want {
				t.Errorf("json =\n%s\nwant\n%s", b.String(), want)
			}
		})
	}
}

func TestPrintRecord(t *testing.T) {
	task := &models.Task{TaskGuid: "t1", Domain: "jobs", State: models.Task_PENDING}
	tests := []struct {
		f    format
		want string
	}{
		{formatJSON, `{"task_guid":"t1","domain":"jobs","state":"PENDING"}` + "\n"},
		{formatTable, "{\n  \"task_guid\": \"t1\",\n  \"domain\": \"jobs\",\n  \"state\": \"PENDING\"\n}\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := printRecord(&b, tt.f, task); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("printRecord(%v) = %q, want %q", tt.f, b.String(), tt.want)
		}
	}
}

func TestEventLines(t *testing.T) {
	running := &models.ActualLRP{
		ActualLrpKey:         &models.ActualLRPKey{ProcessGuid: "web", Index: 1, Domain: "apps"},
		ActualLrpInstanceKey: &models.ActualLRPInstanceKey{InstanceGuid: "i-1", CellId: "cell-1"},
		ActualLrpNetInfo:     &models.ActualLRPNetInfo{Address: "10.0.0.5", Ports: []*models.PortMapping{{ContainerPort: 8080, HostPort: 61001}}},
		State:                models.ActualLRP_RUNNING,
	}
	claimed := &models.ActualLRP{
		ActualLrpKey:         running.GetActualLrpKey(),
		ActualLrpInstanceKey: running.GetActualLrpInstanceKey(),
		State:                models.ActualLRP_CLAIMED,
	}
	si := func(n int32) *models.DesiredLRPSchedulingInfo {
		return &models.DesiredLRPSchedulingInfo{DesiredLrpKey: &models.DesiredLRPKey{ProcessGuid: "web", Domain: "apps"}, Instances: n}
	}
	pos := &models.EventPosition{Revision: 1207, Seq: 1}
	lrp := func(ev *models.LRPEvent) *models.LRPEvent { ev.Position = pos; return ev }
	tests := []struct {
		name string
		line string
		want string
	}{
		{
			"desired created",
			lrpEventLine(lrp(&models.LRPEvent{Event: &models.LRPEvent_DesiredLrpCreated{DesiredLrpCreated: &models.DesiredLRPCreatedEvent{DesiredLrp: si(3)}}})),
			"1207:1       desired-created  web                      domain=apps instances=3",
		},
		{
			"desired scaled",
			lrpEventLine(lrp(&models.LRPEvent{Event: &models.LRPEvent_DesiredLrpChanged{DesiredLrpChanged: &models.DesiredLRPChangedEvent{Before: si(3), After: si(5)}}})),
			"1207:1       desired-changed  web                      instances 3 -> 5",
		},
		{
			"desired removed",
			lrpEventLine(lrp(&models.LRPEvent{Event: &models.LRPEvent_DesiredLrpRemoved{DesiredLrpRemoved: &models.DesiredLRPRemovedEvent{DesiredLrp: si(3)}}})),
			"1207:1       desired-removed  web",
		},
		{
			"actual started",
			lrpEventLine(lrp(&models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceChanged{ActualLrpInstanceChanged: &models.ActualLRPInstanceChangedEvent{Before: claimed, After: running}}})),
			"1207:1       actual-changed   web/1                    CLAIMED -> RUNNING cell=cell-1 address=10.0.0.5 ports=61001->8080",
		},
		{
			"actual crashed",
			lrpEventLine(lrp(&models.LRPEvent{Event: &models.LRPEvent_ActualLrpCrashed{ActualLrpCrashed: &models.ActualLRPCrashedEvent{ActualLrpKey: running.GetActualLrpKey(), CrashCount: 2, CrashReason: "exit status 1"}}})),
			"1207:1       actual-crashed   web/1                    crash #2: exit status 1",
		},
		{
			"actual removed",
			lrpEventLine(lrp(&models.LRPEvent{Event: &models.LRPEvent_ActualLrpInstanceRemoved{ActualLrpInstanceRemoved: &models.ActualLRPInstanceRemovedEvent{ActualLrp: claimed}}})),
			"1207:1       actual-removed   web/1                    was CLAIMED cell=cell-1",
		},
		{
			"task completed",
			taskEventLine(&models.TaskEvent{Position: pos, Event: &models.TaskEvent_TaskChanged{TaskChanged: &models.TaskChangedEvent{
				Before: &models.Task{TaskGuid: "t1", State: models.Task_RUNNING, CellId: "cell-1"},
				After:  &models.Task{TaskGuid: "t1", State: models.Task_COMPLETED, CellId: "cell-1", Failed: true, FailureReason: "exit status 2"},
			}}}),
			`1207:1       task-changed     t1                       RUNNING -> COMPLETED cell=cell-1 failed="exit status 2"`,
		},
		{
			"task created",
			taskEventLine(&models.TaskEvent{Position: pos, Event: &models.TaskEvent_TaskCreated{TaskCreated: &models.TaskCreatedEvent{Task: &models.Task{TaskGuid: "t1", Domain: "jobs", State: models.Task_PENDING}}}}),
			"1207:1       task-created     t1                       PENDING domain=jobs",
		},
	}
	for _, tt := range tests {
		if tt.line != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, tt.line, tt.want)
		}
	}
}

func TestParsePosition(t *testing.T) {
	tests := []struct {
		in      string
		want    *models.EventPosition
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "1234", want: &models.EventPosition{Revision: 1234, Seq: math.MaxUint32}},
		{in: "1234:0", want: &models.EventPosition{Revision: 1234, Seq: 0}},
		{in: "1234:7", want: &models.EventPosition{Revision: 1234, Seq: 7}},
		{in: "0", wantErr: true},
		{in: "-3", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "12:x", wantErr: true},
		{in: "12:-1", wantErr: true},
		{in: ":3", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parsePosition(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parsePosition(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got.GetRevision() != tt.want.GetRevision() || got.GetSeq() != tt.want.GetSeq() || (got == nil) != (tt.want == nil) {
			t.Errorf("parsePosition(%q) = %v, want %v", tt.in, got, tt.want)
		}
		// What positionText prints, parsePosition reads back.
		if got != nil {
			back, err := parsePosition(positionText(got))
			if err != nil || back.GetRevision() != got.GetRevision() || back.GetSeq() != got.GetSeq() {
				t.Errorf("round trip of %q via %q = %v, %v", tt.in, positionText(got), back, err)
			}
		}
	}
}

func TestRoughDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{59 * time.Second, "59s"},
		{61 * time.Second, "1m"},
		{59 * time.Minute, "59m"},
		{47 * time.Hour, "47h"},
		{49 * time.Hour, "2d"},
	}
	for _, tt := range tests {
		if got := roughDuration(tt.d); got != tt.want {
			t.Errorf("roughDuration(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

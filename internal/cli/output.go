package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// column is one table column: a header and how to render a record's cell.
type column[T any] struct {
	header string
	value  func(T) string
}

// printList writes records as an aligned table (formatTable) or as one JSON
// object per line (formatJSON). An empty list prints nothing in JSON and only
// the header in a table, so scripts see no records and people see the shape.
func printList[T proto.Message](w io.Writer, f format, items []T, cols []column[T]) error {
	if f == formatJSON {
		for _, item := range items {
			if err := writeJSONLine(w, item); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, item := range items {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = tableCell(c.value(item))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// tableCell keeps a cell on one line and shows emptiness explicitly, so
// columns stay aligned and a blank never reads as a missing column.
func tableCell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Join(strings.Fields(s), " ")
}

// printRecord shows one record: a JSON line for programs, indented JSON for
// people, since a single record is read for its detail (actions, env,
// routes) that no table row can hold.
func printRecord(w io.Writer, f format, m proto.Message) error {
	data, err := models.MarshalJSON(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	var buf bytes.Buffer
	if f == formatJSON {
		err = json.Compact(&buf, data)
	} else {
		err = json.Indent(&buf, data, "", "  ")
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// writeJSONLine writes m as one compact JSON line. protojson output is
// compacted again because its whitespace is deliberately unstable.
func writeJSONLine(w io.Writer, m proto.Message) error {
	return printRecord(w, formatJSON, m)
}

// Table layouts, one per record kind. Those that show ages take the clock
// so tests can fix it.

func desiredLRPColumns() []column[*models.DesiredLRP] {
	return []column[*models.DesiredLRP]{
		{"PROCESS_GUID", (*models.DesiredLRP).GetProcessGuid},
		{"DOMAIN", (*models.DesiredLRP).GetDomain},
		{"INSTANCES", func(d *models.DesiredLRP) string { return strconv.Itoa(int(d.GetInstances())) }},
		{"MEMORY", func(d *models.DesiredLRP) string { return megabytes(d.GetMemoryMb()) }},
		{"DISK", func(d *models.DesiredLRP) string { return megabytes(d.GetDiskMb()) }},
		{"ROOTFS", (*models.DesiredLRP).GetRootfs},
	}
}

func schedulingInfoColumns() []column[*models.DesiredLRPSchedulingInfo] {
	type si = *models.DesiredLRPSchedulingInfo
	return []column[si]{
		{"PROCESS_GUID", func(s si) string { return s.GetDesiredLrpKey().GetProcessGuid() }},
		{"DOMAIN", func(s si) string { return s.GetDesiredLrpKey().GetDomain() }},
		{"INSTANCES", func(s si) string { return strconv.Itoa(int(s.GetInstances())) }},
		{"MEMORY", func(s si) string { return megabytes(s.GetDesiredLrpResource().GetMemoryMb()) }},
		{"DISK", func(s si) string { return megabytes(s.GetDesiredLrpResource().GetDiskMb()) }},
		{"ROOTFS", si.GetRootfs},
		{"PLACEMENT_TAGS", func(s si) string { return strings.Join(s.GetPlacementTags(), ",") }},
	}
}

func actualLRPColumns(now time.Time) []column[*models.ActualLRP] {
	type al = *models.ActualLRP
	return []column[al]{
		{"PROCESS_GUID", func(a al) string { return a.GetActualLrpKey().GetProcessGuid() }},
		{"INDEX", func(a al) string { return strconv.Itoa(int(a.GetActualLrpKey().GetIndex())) }},
		{"STATE", actualState},
		{"CELL", func(a al) string { return a.GetActualLrpInstanceKey().GetCellId() }},
		{"ADDRESS", func(a al) string { return a.GetActualLrpNetInfo().GetAddress() }},
		{"PORTS", func(a al) string { return ports(a.GetActualLrpNetInfo().GetPorts()) }},
		{"CRASHES", func(a al) string { return strconv.Itoa(int(a.GetCrashCount())) }},
		{"SINCE", func(a al) string { return age(now, a.GetSince()) }},
		{"PRESENCE", func(a al) string { return a.GetPresence().String() }},
	}
}

// actualState shows the state with the reason an instance is stuck, when
// there is one, because that is what an operator looks at the table for.
func actualState(a *models.ActualLRP) string {
	s := a.GetState().String()
	switch {
	case a.GetState() == models.ActualLRP_UNCLAIMED && a.GetPlacementError() != "":
		return s + " (" + a.GetPlacementError() + ")"
	case a.GetState() == models.ActualLRP_CRASHED && a.GetCrashReason() != "":
		return s + " (" + a.GetCrashReason() + ")"
	}
	return s
}

func taskColumns() []column[*models.Task] {
	type tk = *models.Task
	return []column[tk]{
		{"TASK_GUID", tk.GetTaskGuid},
		{"DOMAIN", tk.GetDomain},
		{"STATE", func(t tk) string { return t.GetState().String() }},
		{"CELL", tk.GetCellId},
		{"FAILED", func(t tk) string { return strconv.FormatBool(t.GetFailed()) }},
		{"REASON", func(t tk) string {
			if t.GetFailureReason() != "" {
				return t.GetFailureReason()
			}
			return t.GetRejectionReason()
		}},
	}
}

func domainColumns(now time.Time) []column[*models.Domain] {
	type dm = *models.Domain
	return []column[dm]{
		{"DOMAIN", dm.GetDomain},
		{"TTL", func(d dm) string {
			if d.GetTtl() == 0 {
				return "forever"
			}
			return (time.Duration(d.GetTtl()) * time.Second).String()
		}},
		{"EXPIRES", func(d dm) string {
			if d.GetExpiresAt() == 0 {
				return "never"
			}
			return "in " + roughDuration(time.Unix(0, d.GetExpiresAt()).Sub(now))
		}},
	}
}

func cellColumns() []column[*models.CellPresence] {
	type cp = *models.CellPresence
	return []column[cp]{
		{"CELL_ID", cp.GetCellId},
		{"ZONE", cp.GetZone},
		{"REP_ADDRESS", cp.GetRepAddress},
		{"MEMORY", func(c cp) string { return megabytes(c.GetCapacity().GetMemoryMb()) }},
		{"DISK", func(c cp) string { return megabytes(c.GetCapacity().GetDiskMb()) }},
		{"CONTAINERS", func(c cp) string { return strconv.Itoa(int(c.GetCapacity().GetContainers())) }},
	}
}

// megabytes renders a size given in MB; 0 means "no limit" in Diego specs.
func megabytes(mb int32) string {
	if mb == 0 {
		return "0"
	}
	return strconv.Itoa(int(mb)) + "MB"
}

// ports renders port mappings as host->container, the direction traffic
// takes, joined by commas.
func ports(pms []*models.PortMapping) string {
	parts := make([]string, 0, len(pms))
	for _, pm := range pms {
		parts = append(parts, fmt.Sprintf("%d->%d", pm.GetHostPort(), pm.GetContainerPort()))
	}
	return strings.Join(parts, ",")
}

// age renders a nanosecond timestamp as time elapsed before now.
func age(now time.Time, unixNanos int64) string {
	if unixNanos == 0 {
		return ""
	}
	return roughDuration(now.Sub(time.Unix(0, unixNanos))) + " ago"
}

// roughDuration rounds a duration to its largest unit, as tables want
// "5m" rather than "5m3.2142s".
func roughDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
}

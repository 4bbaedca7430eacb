package db

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// DefaultPrefix is the etcd key prefix gavel stores everything under.
const DefaultPrefix = "/gavel/v1"

// Keys is the etcd key layout. Everything an LRP event stream needs (actual
// LRPs and desired scheduling infos) sits under one prefix, LRP(), so a
// single watch covers it; run infos sit outside it because no stream needs
// them.
//
//	{p}/lrp/a/{process_guid}/{index}/{presence}   ActualLRP
//	{p}/lrp/d/{process_guid}                      DesiredLRPSchedulingInfo
//	{p}/run/{process_guid}                        DesiredLRPRunInfo
//	{p}/task/{task_guid}                          Task
//	{p}/domain/{domain}                           Domain (under a lease when ttl > 0)
//	{p}/cell/{cell_id}                            CellPresence (under a lease)
//
// Guids, domains and cell ids are validated to hold no '/', so the layout
// parses back unambiguously.
type Keys struct {
	Prefix string
}

// NewKeys returns the layout under prefix (DefaultPrefix when empty).
func NewKeys(prefix string) Keys {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Keys{Prefix: strings.TrimSuffix(prefix, "/")}
}

// LRP is the prefix of every actual LRP and desired scheduling info key.
func (k Keys) LRP() string { return k.Prefix + "/lrp/" }

// ActualLRPs is the prefix of every actual LRP key.
func (k Keys) ActualLRPs() string { return k.Prefix + "/lrp/a/" }

// ActualLRPsOf is the prefix of the actual LRPs of one process.
func (k Keys) ActualLRPsOf(processGuid string) string {
	return k.Prefix + "/lrp/a/" + processGuid + "/"
}

// ActualLRPIndex is the prefix of the rows (one per presence) of one index.
func (k Keys) ActualLRPIndex(processGuid string, index int32) string {
	return k.ActualLRPsOf(processGuid) + strconv.Itoa(int(index)) + "/"
}

// ActualLRP is the key of one actual LRP row.
func (k Keys) ActualLRP(processGuid string, index int32, presence models.ActualLRP_Presence) string {
	return k.ActualLRPIndex(processGuid, index) + strconv.Itoa(int(presence))
}

// SchedulingInfos is the prefix of every desired scheduling info key.
func (k Keys) SchedulingInfos() string { return k.Prefix + "/lrp/d/" }

// SchedulingInfo is the key of one desired LRP's scheduling info.
func (k Keys) SchedulingInfo(processGuid string) string { return k.SchedulingInfos() + processGuid }

// RunInfos is the prefix of every desired run info key.
func (k Keys) RunInfos() string { return k.Prefix + "/run/" }

// RunInfo is the key of one desired LRP's run info.
func (k Keys) RunInfo(processGuid string) string { return k.RunInfos() + processGuid }

// Tasks is the prefix of every task key.
func (k Keys) Tasks() string { return k.Prefix + "/task/" }

// Task is the key of one task.
func (k Keys) Task(taskGuid string) string { return k.Tasks() + taskGuid }

// Domains is the prefix of every domain key.
func (k Keys) Domains() string { return k.Prefix + "/domain/" }

// Domain is the key of one domain.
func (k Keys) Domain(domain string) string { return k.Domains() + domain }

// Cells is the prefix of every cell presence key.
func (k Keys) Cells() string { return k.Prefix + "/cell/" }

// Cell is the key of one cell presence.
func (k Keys) Cell(cellID string) string { return k.Cells() + cellID }

// KeyKind says what record a key holds.
type KeyKind int

// The kinds of key in the layout.
const (
	KindUnknown KeyKind = iota
	KindActualLRP
	KindSchedulingInfo
	KindRunInfo
	KindTask
	KindDomain
	KindCell
)

// Kind classifies a key of this layout.
func (k Keys) Kind(key string) KeyKind {
	switch {
	case strings.HasPrefix(key, k.ActualLRPs()):
		return KindActualLRP
	case strings.HasPrefix(key, k.SchedulingInfos()):
		return KindSchedulingInfo
	case strings.HasPrefix(key, k.RunInfos()):
		return KindRunInfo
	case strings.HasPrefix(key, k.Tasks()):
		return KindTask
	case strings.HasPrefix(key, k.Domains()):
		return KindDomain
	case strings.HasPrefix(key, k.Cells()):
		return KindCell
	}
	return KindUnknown
}

// ParseActualLRP splits an actual LRP key into its parts.
func (k Keys) ParseActualLRP(key string) (processGuid string, index int32, presence models.ActualLRP_Presence, err error) {
	rest, ok := strings.CutPrefix(key, k.ActualLRPs())
	if !ok {
		return "", 0, 0, fmt.Errorf("key %q is not an actual LRP key", key)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", 0, 0, fmt.Errorf("key %q is not an actual LRP key", key)
	}
	i, err := strconv.ParseInt(parts[1], 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("key %q: bad index: %w", key, err)
	}
	p, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("key %q: bad presence: %w", key, err)
	}
	return parts[0], int32(i), models.ActualLRP_Presence(p), nil
}

package converger

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// CellReport is what a pass concluded about the cells.
type CellReport struct {
	// Present counts the cells whose presence is in etcd.
	Present int `json:"present"`
	// Lost are absent cells the plan acts on (their instances become
	// SUSPECT and are replaced, their tasks fail).
	Lost []string `json:"lost,omitempty"`
	// Held are absent cells the mass-failure guard holds: nothing of
	// theirs is replaced, failed or removed.
	Held []string `json:"held,omitempty"`
	// GuardRaised is true while any cell is held.
	GuardRaised bool `json:"guard_raised"`
	// WaveShare is the share of cells that vanished inside the last guard
	// window (the figure compared with the threshold).
	WaveShare float64 `json:"wave_share"`
	// Confirmed are cells an operator's confirmation released in this pass.
	Confirmed []string `json:"confirmed,omitempty"`
}

// evaluateCells is the mass-failure guard. From the converger's memory of
// the cells, the cells present now, the cells rows and tasks still point at,
// and the operator's latest confirmation, it decides which absent cells the
// plan may act on and which it holds, and returns the memory to keep.
//
// A cell counts as lost from the first pass that misses it. The cells lost
// inside one guard window (one presence TTL) form a wave; when a wave is more
// than the threshold share of the cells that were up just before it (present
// plus the wave), the converger is far more likely cut off from the cells, or
// the cells from etcd, than seeing them all die, so it holds every cell of
// the wave. Holding is sticky: a held cell stays held, and every cell lost
// while any is held joins them, until the cell returns or an operator
// confirms its loss. A cell never seen present but still named by a row
// counts as lost at the pass that first meets it, so a converger that starts
// in the middle of a partition holds too.
func evaluateCells(prev *models.ConvergerState, present, referenced map[string]bool,
	conf *models.CellLossConfirmation, now int64, set Settings) (CellReport, *models.ConvergerState) {
	recs := make(map[string]*models.ConvergerCell, len(prev.GetCells())+len(present))
	for _, c := range prev.GetCells() {
		recs[c.GetCellId()] = proto.Clone(c).(*models.ConvergerCell)
	}
	heldBefore := false
	for _, c := range recs {
		heldBefore = heldBefore || c.Held
	}
	for id := range present {
		recs[id] = &models.ConvergerCell{CellId: id, LastSeen: now}
	}
	for id := range referenced {
		if !present[id] && recs[id] == nil {
			recs[id] = &models.ConvergerCell{CellId: id}
		}
	}
	for _, c := range recs {
		if !present[c.CellId] && c.LostAt == 0 {
			c.LostAt = now
		}
	}

	var report CellReport
	next := &models.ConvergerState{
		GuardRaisedAt:         prev.GetGuardRaisedAt(),
		AppliedConfirmationAt: prev.GetAppliedConfirmationAt(),
		UpdatedAt:             now,
		Generation:            prev.GetGeneration() + 1,
		Settings:              set.Proto(),
	}
	if conf != nil && conf.GetConfirmedAt() > prev.GetAppliedConfirmationAt() {
		for _, id := range conf.GetCellIds() {
			if c := recs[id]; c != nil && c.LostAt != 0 && !c.Confirmed {
				c.Held, c.Confirmed = false, true
				report.Confirmed = append(report.Confirmed, id)
			}
		}
		next.AppliedConfirmationAt = conf.GetConfirmedAt()
	}

	windowStart := now - int64(set.GuardWindow)
	var wave []*models.ConvergerCell
	stillHeld := false
	for _, c := range recs {
		stillHeld = stillHeld || c.Held
		if c.LostAt != 0 && !c.Confirmed && (c.Held || c.LostAt >= windowStart) {
			wave = append(wave, c)
		}
	}
	if len(wave) > 0 {
		report.WaveShare = float64(len(wave)) / float64(len(present)+len(wave))
	}
	raised := stillHeld || (len(wave) > 0 && report.WaveShare > set.GuardThreshold)
	if raised {
		for _, c := range wave {
			c.Held = true
		}
		if !heldBefore || next.GuardRaisedAt == 0 {
			next.GuardRaisedAt = now
		}
	} else {
		next.GuardRaisedAt = 0
	}

	for id, c := range recs {
		// Forget a lost cell nothing points at any more, once it is out of
		// the window (it no longer counts towards a wave).
		if c.LostAt != 0 && !c.Held && !referenced[id] && c.LostAt < windowStart {
			delete(recs, id)
			continue
		}
		next.Cells = append(next.Cells, c)
		switch {
		case c.LostAt == 0:
		case c.Held:
			report.Held = append(report.Held, id)
		default:
			report.Lost = append(report.Lost, id)
		}
	}
	slices.SortFunc(next.Cells, func(a, b *models.ConvergerCell) int { return strings.Compare(a.CellId, b.CellId) })
	slices.Sort(report.Held)
	slices.Sort(report.Lost)
	slices.Sort(report.Confirmed)
	report.Present = len(present)
	report.GuardRaised = raised
	return report, next
}

package converger

import (
	"google.golang.org/protobuf/proto"

	"github.com/gavel-scheduler/gavel/proto/models"
)

// Limits on one Converge request: well under the BBS's 4 MiB message limit
// and models.MaxConvergeActions.
const (
	maxRequestActions = 2000
	maxRequestBytes   = 2 << 20
)

// chunker splits a plan into requests of bounded count and size, keeping
// the order of the rules: a rule's actions fill the current request before
// the next rule's start, and a request never holds a later rule's actions
// before an earlier one's.
type chunker[R proto.Message] struct {
	newReq         func() R
	maxN, maxBytes int
	out            []R
	cur            R
	n, bytes       int
}

func (c *chunker[R]) add(m proto.Message, put func(R)) {
	size := proto.Size(m) + 8
	if c.n == 0 || c.n >= c.maxN || c.bytes+size > c.maxBytes {
		c.cur = c.newReq()
		c.out = append(c.out, c.cur)
		c.n, c.bytes = 0, 0
	}
	put(c.cur)
	c.n++
	c.bytes += size
}

func retirementProto(r Retirement) *models.ActualLRPRetirement {
	out := &models.ActualLRPRetirement{ActualLrp: r.Actual}
	if r.Desired != nil {
		out.DesiredModificationTag = r.Desired.GetModificationTag()
		if out.DesiredModificationTag == nil {
			// A desired LRP stored without a tag still guards by its
			// (empty) tag rather than reading as "no desired LRP".
			out.DesiredModificationTag = &models.ModificationTag{}
		}
	}
	return out
}

// LRPRequests is the LRP half of the plan as ConvergeLRPs requests.
func (p *Plan) LRPRequests() []*models.ConvergeLRPsRequest {
	return p.lrpRequests(maxRequestActions, maxRequestBytes)
}

func (p *Plan) lrpRequests(maxN, maxBytes int) []*models.ConvergeLRPsRequest {
	c := &chunker[*models.ConvergeLRPsRequest]{newReq: func() *models.ConvergeLRPsRequest { return &models.ConvergeLRPsRequest{} }, maxN: maxN, maxBytes: maxBytes}
	for _, a := range p.RemoveEvacuating {
		c.add(a, func(r *models.ConvergeLRPsRequest) { r.RemoveEvacuating = append(r.RemoveEvacuating, a) })
	}
	for _, a := range p.Suspect {
		c.add(a, func(r *models.ConvergeLRPsRequest) { r.Suspect = append(r.Suspect, a) })
	}
	for _, a := range p.UnclaimLost {
		c.add(a, func(r *models.ConvergeLRPsRequest) { r.UnclaimLost = append(r.UnclaimLost, a) })
	}
	for _, m := range p.Missing {
		for start := 0; start < len(m.Indices); start += maxN {
			mm := &models.MissingActualLRPs{
				ProcessGuid: m.Desired.ProcessGuid(), Domain: m.Desired.GetDesiredLrpKey().GetDomain(),
				DesiredModificationTag: m.Desired.GetModificationTag(),
				Indices:                m.Indices[start:min(start+maxN, len(m.Indices))],
			}
			if mm.DesiredModificationTag == nil {
				mm.DesiredModificationTag = &models.ModificationTag{}
			}
			c.add(mm, func(r *models.ConvergeLRPsRequest) { r.CreateMissing = append(r.CreateMissing, mm) })
		}
	}
	for _, ret := range p.Retire {
		m := retirementProto(ret)
		c.add(m, func(r *models.ConvergeLRPsRequest) { r.Retire = append(r.Retire, m) })
	}
	for _, ret := range p.RemoveOrphanedSuspect {
		m := retirementProto(ret)
		c.add(m, func(r *models.ConvergeLRPsRequest) { r.RemoveOrphanedSuspect = append(r.RemoveOrphanedSuspect, m) })
	}
	for _, a := range p.RemoveExtraSuspect {
		c.add(a, func(r *models.ConvergeLRPsRequest) { r.RemoveExtraSuspect = append(r.RemoveExtraSuspect, a) })
	}
	for _, a := range p.PromoteSuspect {
		c.add(a, func(r *models.ConvergeLRPsRequest) { r.PromoteSuspect = append(r.PromoteSuspect, a) })
	}
	for _, a := range p.RestartCrashed {
		c.add(a, func(r *models.ConvergeLRPsRequest) { r.RestartCrashed = append(r.RestartCrashed, a) })
	}
	return c.out
}

// TaskRequests is the task half of the plan as ConvergeTasks requests.
func (p *Plan) TaskRequests() []*models.ConvergeTasksRequest {
	return p.taskRequests(maxRequestActions, maxRequestBytes)
}

func (p *Plan) taskRequests(maxN, maxBytes int) []*models.ConvergeTasksRequest {
	c := &chunker[*models.ConvergeTasksRequest]{newReq: func() *models.ConvergeTasksRequest { return &models.ConvergeTasksRequest{} }, maxN: maxN, maxBytes: maxBytes}
	for _, t := range p.ExpirePending {
		c.add(t, func(r *models.ConvergeTasksRequest) { r.ExpirePending = append(r.ExpirePending, t) })
	}
	for _, t := range p.FailOnLostCell {
		c.add(t, func(r *models.ConvergeTasksRequest) { r.FailOnLostCell = append(r.FailOnLostCell, t) })
	}
	for _, t := range p.DemoteResolving {
		c.add(t, func(r *models.ConvergeTasksRequest) { r.DemoteResolving = append(r.DemoteResolving, t) })
	}
	for _, t := range p.DeleteCompleted {
		c.add(t, func(r *models.ConvergeTasksRequest) { r.DeleteCompleted = append(r.DeleteCompleted, t) })
	}
	for _, t := range p.KickCallbacks {
		guid := t.GetTaskGuid()
		c.add(&models.Task{TaskGuid: guid}, func(r *models.ConvergeTasksRequest) { r.KickCallbacks = append(r.KickCallbacks, guid) })
	}
	return c.out
}

// startRequests groups the instances to auction by process, in the order
// they come, one request per process.
func (p *Plan) startRequests(keys []*models.ActualLRPKey) []*models.LRPStartRequest {
	byGuid := make(map[string][]int32)
	seen := make(map[slotKey]bool)
	var order []string
	for _, k := range keys {
		sk := slotKey{k.GetProcessGuid(), k.GetIndex()}
		if seen[sk] || p.desired[sk.guid] == nil {
			continue
		}
		seen[sk] = true
		if _, ok := byGuid[sk.guid]; !ok {
			order = append(order, sk.guid)
		}
		byGuid[sk.guid] = append(byGuid[sk.guid], sk.index)
	}
	out := make([]*models.LRPStartRequest, 0, len(order))
	for _, guid := range order {
		out = append(out, p.desired[guid].LRPStartRequest(byGuid[guid]...))
	}
	return out
}

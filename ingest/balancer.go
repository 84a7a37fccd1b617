package ingest

import (
	"cmp"
	"encoding/binary"
	"slices"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// activeStandby is the group balancer of detection-enabled instances.
// Detection must see the whole fleet, so one member — the one that joined
// first — is assigned every partition and the others none: they are hot
// standbys that take over, restoring the latest detector checkpoint, when
// the active member leaves or its session expires. A standby joining never
// moves partitions away from the active member, because the oldest member
// keeps winning.
type activeStandby struct {
	started int64 // unix ns this member was created: its seniority
	joins   atomic.Uint64
}

// activeStandbyProtocol is the group protocol name; every member of a
// detection group must speak it (kafka-go picks a protocol all support).
const activeStandbyProtocol = "declinemon-active-standby"

func newActiveStandby(now time.Time) *activeStandby { return &activeStandby{started: now.UnixNano()} }

func (b *activeStandby) ProtocolName() string { return activeStandbyProtocol }

// UserData carries the member's seniority to the group leader. kafka-go
// asks for it at every join, which is how the member counts its joins.
func (b *activeStandby) UserData() ([]byte, error) {
	b.joins.Add(1)
	return binary.BigEndian.AppendUint64(nil, uint64(b.started)), nil
}

// AssignGroups gives every partition to the most senior member (ties and
// members without seniority broken by member id, so every leader decides
// the same).
func (b *activeStandby) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	if len(members) == 0 {
		return out
	}
	seniority := func(m kafka.GroupMember) uint64 {
		if len(m.UserData) < 8 {
			return ^uint64(0) // unknown: least senior
		}
		return binary.BigEndian.Uint64(m.UserData)
	}
	active := slices.MinFunc(members, func(a, b kafka.GroupMember) int {
		return cmp.Or(cmp.Compare(seniority(a), seniority(b)), cmp.Compare(a.ID, b.ID))
	})
	for _, m := range members {
		out[m.ID] = map[string][]int{}
	}
	topics := map[string]bool{}
	for _, t := range active.Topics {
		topics[t] = true
	}
	for _, p := range partitions {
		if topics[p.Topic] {
			out[active.ID][p.Topic] = append(out[active.ID][p.Topic], p.ID)
		}
	}
	for _, ps := range out[active.ID] {
		slices.Sort(ps)
	}
	return out
}

// countingBalancer is kafka-go's range assignment, counting this member's
// joins the way activeStandby does (kafka-go asks every balancer for its
// UserData at each join).
type countingBalancer struct {
	kafka.GroupBalancer
	joins atomic.Uint64
}

func (b *countingBalancer) UserData() ([]byte, error) {
	b.joins.Add(1)
	return b.GroupBalancer.UserData()
}

package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
)

// A reply topic must have one reader: two processes with one node id would
// each take some of the other's replies. Kafka has no exclusive consumer, so
// the inbox holds a lock made of consumer group membership, which the broker
// keeps alive only while the member heartbeats: every inbox joins the group
// LockGroup(topic) and, once in, reads the group's members (DescribeGroups,
// which carries each member's join metadata). The members all apply one
// rule to that list, so they agree on one owner:
//
//   - a member that already owned the topic (it says so in its metadata)
//     beats one that never did: a running node is never displaced by a
//     newcomer;
//   - otherwise (two processes starting at once) the lower random ticket,
//     then the lower member id, wins.
//
// A member that is not the owner gives up: Subscribe returns ErrInUse. A
// crashed owner's membership lapses with its session (lockSessionTimeout),
// so a restart with the same id waits at most that long for the lock; one
// that stopped cleanly leaves the group and its successor starts at once.

// lockProtocol names the group protocol; every member must speak it.
const lockProtocol = "syncgate-inbox-lock-v1"

// LockGroup is the consumer group through which the reply inbox of topic
// claims it (see brokers.ErrInUse).
func LockGroup(topic string) string { return "syncgate.inbox-lock." + topic }

// lockBalancer is the group protocol of the lock: its UserData is the
// member's claim (owner flag and ticket); its assignment is irrelevant
// (the inbox reads every partition by itself), so everything goes to one
// member.
type lockBalancer struct {
	owner  *atomic.Bool
	ticket uint64
}

func (b lockBalancer) ProtocolName() string { return lockProtocol }

func (b lockBalancer) UserData() ([]byte, error) { return encodeClaim(b.owner.Load(), b.ticket), nil }

func (b lockBalancer) AssignGroups(members []kafkago.GroupMember, partitions []kafkago.Partition) kafkago.GroupMemberAssignments {
	out := make(kafkago.GroupMemberAssignments, len(members))
	for _, m := range members {
		out[m.ID] = map[string][]int{}
	}
	if len(members) > 0 {
		first := members[0].ID
		for _, p := range partitions {
			out[first][p.Topic] = append(out[first][p.Topic], p.ID)
		}
	}
	return out
}

// claim is what a member says of itself when it joins.
type claim struct {
	owner  bool
	ticket uint64
	member string
}

const claimLen = 1 + 8

func encodeClaim(owner bool, ticket uint64) []byte {
	b := make([]byte, claimLen)
	if owner {
		b[0] = 1
	}
	binary.BigEndian.PutUint64(b[1:], ticket)
	return b
}

// decodeClaim reads a member's claim; a member that speaks another format
// claims nothing and loses to any that does.
func decodeClaim(member string, b []byte) claim {
	if len(b) != claimLen {
		return claim{ticket: ^uint64(0), member: member}
	}
	return claim{owner: b[0] == 1, ticket: binary.BigEndian.Uint64(b[1:]), member: member}
}

// before reports whether c wins over d.
func (c claim) before(d claim) bool {
	if c.owner != d.owner {
		return c.owner
	}
	if c.ticket != d.ticket {
		return c.ticket < d.ticket
	}
	return c.member < d.member
}

// winner returns the member the rule picks among claims.
func winner(claims []claim) claim {
	return slices.MinFunc(claims, func(a, b claim) int {
		switch {
		case a.before(b):
			return -1
		case b.before(a):
			return 1
		}
		return 0
	})
}

// lockSessionTimeout is how long the broker keeps a silent lock member: how
// long a crashed node's successor (a restart with its id, or a cluster
// node adopting its replies) waits. Shorter than a service group's
// session_timeout, since nothing is rebalanced: 6s, the least a broker
// accepts by default (group.min.session.timeout.ms), or three heartbeats if
// that is more, and never more than session_timeout.
func lockSessionTimeout(cfg *Config) time.Duration {
	return min(cfg.SessionTimeout, max(6*time.Second, 3*cfg.HeartbeatInterval))
}

// inboxLock is an inbox's membership of its lock group.
type inboxLock struct {
	sub   *Subscriber
	topic string
	group string
	log   *slog.Logger
	owner atomic.Bool
	cg    *kafkago.ConsumerGroup
	held  chan struct{} // closed when hold returns; nil before the lock is taken
}

// lockInbox joins the lock group of topic and returns once this process
// owns the topic, or an error wrapping brokers.ErrInUse when another live
// process does. It waits while the broker is unreachable and returns nil,
// nil when ctx ends first. The lock is held until release; lost receives
// brokers.ErrInUse if another owner wins later (two processes that each
// took the lock while the other could not reach the broker).
func (s *Subscriber) lockInbox(ctx context.Context, topic string, log *slog.Logger) (l *inboxLock, lost <-chan error, err error) {
	l = &inboxLock{sub: s, topic: topic, group: LockGroup(topic), log: log}
	l.cg, err = kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                l.group,
		Brokers:           s.cfg.Brokers,
		Dialer:            s.dialer,
		Topics:            []string{topic},
		GroupBalancers:    []kafkago.GroupBalancer{lockBalancer{owner: &l.owner, ticket: rand.Uint64()}},
		HeartbeatInterval: s.cfg.HeartbeatInterval,
		SessionTimeout:    lockSessionTimeout(&s.cfg),
		// A rebalance waits for a member that stopped heartbeating no
		// longer than its session would last anyway.
		RebalanceTimeout: lockSessionTimeout(&s.cfg),
		JoinGroupBackoff: s.cfg.JoinGroupBackoff,
		Logger:           kafkaLogger(log, "kafka-go.lock"),
		ErrorLogger:      kafkaLogger(log, "kafka-go.lock"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: inbox lock for %q: %w", topic, err)
	}
	member := "" // ours, once a generation was joined
	for {
		gen, err := l.next(ctx, member != "")
		switch {
		case err == nil:
			member = gen.MemberID
		case ctx.Err() != nil, errors.Is(err, kafkago.ErrGroupClosed):
			l.release()
			return nil, nil, nil
		case fatalGroupError(err):
			l.release()
			return nil, nil, fmt.Errorf("kafka: inbox lock for %q: %w", topic, err)
		case member == "":
			log.Debug("kafka: inbox lock: join failed, retrying", "err", err)
			continue
		}
		won, err := l.decide(ctx, member)
		if err != nil {
			// Asked again soon, or on the next generation if one comes.
			log.Debug("kafka: inbox lock: reading the group failed, retrying", "err", err)
			continue
		}
		if !won {
			l.release()
			return nil, nil, fmt.Errorf("kafka: reply topic %q is consumed by another live process (consumer group %s): %w", topic, l.group, brokers.ErrInUse)
		}
		l.owner.Store(true)
		ch := make(chan error, 1)
		l.held = make(chan struct{})
		go func() {
			defer close(l.held)
			l.hold(ctx, ch)
		}()
		return l, ch, nil
	}
}

// next returns the group's next generation. With pending (a decision on
// the current one could not be made yet) it waits only briefly: the
// caller then decides on the current generation again, since a group that
// stays stable brings no next one.
func (l *inboxLock) next(ctx context.Context, pending bool) (*kafkago.Generation, error) {
	if !pending {
		return l.cg.Next(ctx)
	}
	nctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	return l.cg.Next(nctx)
}

// hold follows the group's later generations until ctx ends or the cg is
// closed, reporting on lost if another member wins one.
func (l *inboxLock) hold(ctx context.Context, lost chan<- error) {
	member, pending := "", false
	for {
		gen, err := l.next(ctx, pending)
		switch {
		case err == nil:
			member, pending = gen.MemberID, true
		case ctx.Err() != nil, errors.Is(err, kafkago.ErrGroupClosed):
			return
		case !pending:
			continue // kafka-go backs off and rejoins
		}
		won, err := l.decide(ctx, member)
		if err != nil {
			continue
		}
		pending = false
		if !won {
			lost <- fmt.Errorf("kafka: reply topic %q is consumed by another live process (consumer group %s): %w", l.topic, l.group, brokers.ErrInUse)
			return
		}
	}
}

// decide reads the group's members once and applies the rule. It fails
// while the group is not stable (a rebalance hides the members' claims) or
// does not list me yet.
func (l *inboxLock) decide(ctx context.Context, me string) (bool, error) {
	a := newAdmin(&l.sub.cfg, l.sub.sec, l.topic)
	defer a.close()
	claims, err := l.members(ctx, a)
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(claims, func(c claim) bool { return c.member == me }) {
		return false, fmt.Errorf("member %s not in group %s yet", me, l.group)
	}
	w := winner(claims)
	if w.member != me {
		l.log.Debug("kafka: inbox lock held by another member", "members", len(claims), "me", me, "owner", w.member)
	}
	return w.member == me, nil
}

// members returns the claims of the lock group's members, or an error
// while the group is not stable.
func (l *inboxLock) members(ctx context.Context, a *admin) ([]claim, error) {
	dctx, cancel := context.WithTimeout(ctx, l.sub.cfg.WriteTimeout)
	defer cancel()
	res, err := a.client.DescribeGroups(dctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{l.group}})
	if err != nil {
		return nil, err
	}
	for _, g := range res.Groups {
		if g.GroupID != l.group {
			continue
		}
		if g.Error != nil {
			return nil, g.Error
		}
		if g.GroupState != "Stable" {
			return nil, fmt.Errorf("group %s is %s", l.group, g.GroupState)
		}
		claims := make([]claim, 0, len(g.Members))
		for _, m := range g.Members {
			claims = append(claims, decodeClaim(m.MemberID, m.MemberMetadata.UserData))
		}
		return claims, nil
	}
	return nil, fmt.Errorf("group %s not described", l.group)
}

// release leaves the lock group, so a successor need not wait for this
// member's session to expire, and returns once hold has returned. It is
// idempotent.
func (l *inboxLock) release() {
	_ = l.cg.Close()
	if l.held != nil {
		<-l.held
	}
}

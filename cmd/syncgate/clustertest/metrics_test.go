package clustertest

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metrics is one scrape of a node's /metrics.
type metrics map[string]*dto.MetricFamily

// scrape reads n's /metrics.
func (c *cluster) scrape(n *node) metrics {
	c.t.Helper()
	status, body, err := c.get(n, "/metrics")
	if err != nil || status != http.StatusOK {
		c.t.Fatalf("GET /metrics on node %s: %d %v", n.id, status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	m, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		c.t.Fatalf("node %s: parse /metrics: %v", n.id, err)
	}
	return m
}

// value sums the samples of name whose labels include the given name,
// value pairs: counter and gauge values, histogram sample counts.
func (m metrics) value(name string, labels ...string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, s := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range s.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			sum += s.GetCounter().GetValue()
		case s.Gauge != nil:
			sum += s.GetGauge().GetValue()
		case s.Histogram != nil:
			sum += float64(s.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// adopted is n's syncgate_adopted_nodes: how many dead nodes' reply
// addresses it consumes.
func (c *cluster) adopted(n *node) float64 {
	c.t.Helper()
	return c.scrape(n).value("syncgate_adopted_nodes")
}

// byLabel returns name's values by the value of label.
func (m metrics) byLabel(name, label string) map[string]float64 {
	out := make(map[string]float64)
	for _, s := range m[name].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] += s.GetCounter().GetValue()
			}
		}
	}
	return out
}

// counts is the cluster accounting of some nodes, summed.
type counts struct {
	published     float64            // requests the broker acknowledged
	publishFailed float64            // requests it did not
	replies       map[string]float64 // syncgate_replies_total by outcome: replies consumed
	forwards      map[string]float64 // syncgate_forwarded_replies_total by outcome: replies forwarded to a node
	replyErrors   float64            // syncgate_reply_errors_total
	clusterErrors map[string]float64 // syncgate_cluster_errors_total by op
	accepted      float64            // syncgate_accepted_total: 202 answers
	waiting       float64            // syncgate_waiting_requests
}

// counts scrapes and sums the given nodes.
func (c *cluster) counts(nodes ...*node) counts {
	c.t.Helper()
	k := counts{replies: map[string]float64{}, forwards: map[string]float64{}, clusterErrors: map[string]float64{}}
	for _, n := range nodes {
		m := c.scrape(n)
		k.published += m.value("syncgate_publish_duration_seconds", "result", "ok")
		k.publishFailed += m.value("syncgate_publish_duration_seconds", "result", "error")
		for o, v := range m.byLabel("syncgate_replies_total", "outcome") {
			k.replies[o] += v
		}
		for o, v := range m.byLabel("syncgate_forwarded_replies_total", "outcome") {
			k.forwards[o] += v
		}
		for op, v := range m.byLabel("syncgate_cluster_errors_total", "op") {
			k.clusterErrors[op] += v
		}
		k.replyErrors += m.value("syncgate_reply_errors_total")
		k.accepted += m.value("syncgate_accepted_total")
		k.waiting += m.value("syncgate_waiting_requests")
	}
	return k
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

func (k counts) String() string {
	show := func(m map[string]float64) string {
		var parts []string
		for _, key := range slices.Sorted(maps.Keys(m)) {
			if m[key] != 0 {
				parts = append(parts, fmt.Sprintf("%s=%.0f", key, m[key]))
			}
		}
		return "{" + strings.Join(parts, " ") + "}"
	}
	return fmt.Sprintf("published=%.0f publish_failed=%.0f replies%s forwarded%s reply_errors=%.0f cluster_errors%s accepted=%.0f waiting=%.0f",
		k.published, k.publishFailed, show(k.replies), show(k.forwards), k.replyErrors, show(k.clusterErrors), k.accepted, k.waiting)
}

// settle waits until the nodes consumed every reply the service sent and
// the forwarded ones reached their nodes, then returns the counts. Pub/sub
// is at most once: with lossy set, forwards still missing after 2s (a
// forward takes milliseconds) are taken as lost in transit instead of
// failing the test.
func (c *cluster) settle(svc *service, lossy bool, nodes ...*node) counts {
	c.t.Helper()
	var k counts
	deadline := time.Now().Add(20 * time.Second)
	for {
		k = c.counts(nodes...)
		consumed := sum(k.replies) == float64(svc.answered.Load())
		arrived := sum(k.forwards) == k.replies["forwarded"]
		if consumed && (arrived || lossy && time.Until(deadline) < 18*time.Second) {
			return k
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the nodes did not settle within 20s: the service sent %d replies; %v", svc.answered.Load(), k)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ledger is where every published request ended, by the nodes' metrics.
// A reply forwarded to another node ends with that node's outcome.
type ledger struct {
	published float64
	delivered float64 // to the request waiting for it, directly or forwarded
	stored    float64 // for polling: its request was answered 202
	expired   float64 // no reply in time: unanswered, late (orphan), lost while Redis was down
	inTransit float64 // forwarded, but never reached its node (pub/sub is at most once)
	lost      float64 // neither stored nor forwarded (Redis down)
}

// reconcile checks that every published request is accounted for:
// published = delivered + stored + expired, where unanswered requests (the
// service never replied) count as expired. Outcomes that no test provokes
// (duplicate, invalid, cancelled replies; failed publishes or reply
// handling) must be 0; so must lost and in-transit replies unless lossy.
// tolerance is what a reconciliation lets pass besides exact counts.
type tolerance int

const (
	exact tolerance = iota
	// lossy: replies and forwards lost while Redis was unreachable.
	lossy
	// failover: lossy, and forwards counted undelivered by the node that
	// published them but received all the same. Across a master failover a
	// publish on the new master counts only its own subscribers, while a
	// subscriber still on the old master, now its replica, receives the
	// message replicated.
	failover
)

func reconcile(t *testing.T, k counts, unanswered int, tol tolerance) ledger {
	t.Helper()
	r, f := k.replies, k.forwards
	l := ledger{
		published: k.published,
		delivered: r["delivered"] + f["delivered"],
		// A forwarded reply of a pollable request is stored by the node
		// that consumed it before it is forwarded: when the owner no longer
		// waits it finds the reply stored already and counts it "stored".
		stored:    r["stored"] + f["stored"],
		inTransit: r["forwarded"] - sum(f),
		lost:      r["lost"] + f["lost"],
	}
	l.expired = r["orphan"] + f["orphan"] + l.lost + l.inTransit + float64(unanswered)
	if got := l.delivered + l.stored + l.expired; got != l.published {
		t.Errorf("published %.0f requests, but delivered %.0f + stored %.0f + expired %.0f = %.0f; %v",
			l.published, l.delivered, l.stored, l.expired, got, k)
	}
	for _, bad := range []struct {
		what string
		n    float64
	}{
		{"failed publishes", k.publishFailed},
		{"reply errors", k.replyErrors},
		{"duplicate replies", r["duplicate"] + f["duplicate"]},
		{"invalid replies", r["invalid"] + f["invalid"]},
		{"cancelled replies", r["cancelled"] + f["cancelled"]},
		{"forwards of forwards", f["forwarded"]},
		{"requests still waiting", k.waiting},
	} {
		if bad.n != 0 {
			t.Errorf("%.0f %s; %v", bad.n, bad.what, k)
		}
	}
	if l.inTransit < 0 && tol != failover {
		t.Errorf("more forwarded replies arrived (%.0f) than were forwarded (%.0f)", sum(f), r["forwarded"])
	}
	if tol == exact && (l.inTransit != 0 || l.lost != 0 || sum(k.clusterErrors) != 0) {
		t.Errorf("%.0f replies lost, %.0f forwards lost, cluster errors %v, with Redis up all along; %v",
			l.lost, l.inTransit, k.clusterErrors, k)
	}
	return l
}

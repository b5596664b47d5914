package node_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// TestClusterAdoptsSDKRepliesOnNATS: in jetstream mode a reply that a
// service on the responder SDK publishes to a dead node's reply subject
// before another node adopts it is not lost (as the plain publish of
// TestClusterAdoptsOnNATS is): the publish is a request nobody answers, so
// the SDK publishes again, holding the request, until the adopting node's
// subscription confirms it. Node a accepts an async request (timeout 20 s,
// lease TTL 0.3 s) and stops while the service holds it; the service
// answers once a is gone. Node b is started only once the service's
// publishes have failed for longer than ack_wait, so that nobody subscribes
// to a's subject when the reply is first published (with b running the
// moment of its adoption round would race the first publish). Then b
// adopts a: the poll on b must end 200 with the reply before the request's
// deadline, and the service must have run its handler once: the publish was
// retried, the request was neither redelivered (the gap outlasts ack_wait)
// nor handled again.
func TestClusterAdoptsSDKRepliesOnNATS(t *testing.T) {
	testenv.RequireRedis(t)
	srv := testenv.StartNATSServer(t, true)
	ncfg := restartNATSConfig(srv.URL, natsb.ModeJetStream)

	// The service, on its own connection; its ack_wait is the minimum, and
	// the gap below outlasts it: the request it holds while retrying must
	// be kept alive, not delivered again.
	svcCfg := ncfg
	svcCfg.AckWait = time.Second
	var bNode atomic.Pointer[node.Node]
	adopted := func() bool {
		n := bNode.Load()
		return n != nil && slices.Contains(n.Adopting(), "a")
	}
	pub := &sdkPublisher{adopted: adopted, attempts: make(chan sdkAttempt, 256)}
	var handled atomic.Int32
	reqs := make(chan responder.Request, 4)
	release := make(chan struct{})
	const answer = "answered while a was gone"
	startNATSService(t, svcCfg, func(ctx context.Context, svc *responder.Service, ready func()) error {
		pub.p = svc.Publisher
		svc.Publisher = pub
		return svc.Serve(ctx, "adopt.sdk", func(ctx context.Context, req responder.Request) (responder.Reply, error) {
			handled.Add(1)
			select {
			case reqs <- req:
			default:
			}
			select {
			case <-release:
			case <-ctx.Done():
				return responder.Reply{}, ctx.Err()
			}
			return responder.Reply{Status: http.StatusOK, ContentType: "text/plain", Body: []byte(answer)}, nil
		}, brokers.WithGroup("adopt-sdk"), brokers.WithReady(ready))
	})

	cfgA := clusterConfig(t, testenv.RedisAddr)
	cfgA.Node, cfgA.ReplyTo, cfgA.Demo.Enabled = "a", "syncgate.reply.a", false
	cfgA.Broker.Kind, cfgA.Broker.NATS = "nats", ncfg
	cfgA.Cluster.LeaseTTL = 300 * time.Millisecond
	cfgA.Routes = []node.RouteConfig{{Name: "async", Method: "PUT", Path: "/t/sdk", Destination: "adopt.sdk", Mode: "async", Timeout: 20 * time.Second}}
	cfgA.SetDefaults()
	if err := cfgA.Validate(); err != nil {
		t.Fatal(err)
	}
	cfgB := cfgA
	cfgB.Node, cfgB.ReplyTo = "b", "syncgate.reply.b"
	a := startCluster(t, cfgA)

	resp, got := send(t, "PUT", a.base+"/t/sdk", []byte("held"), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT on a: %d %s", resp.StatusCode, got)
	}
	location := resp.Header.Get("Location")
	var req responder.Request
	select {
	case req = <-reqs:
	case <-time.After(15 * time.Second):
		t.Fatal("the service got no request")
	}
	if req.ReplyTo != "syncgate.reply.a" || string(req.Body) != "held" || req.Deadline.IsZero() {
		t.Fatalf("the service got reply-to %q, body %q, deadline %v", req.ReplyTo, req.Body, req.Deadline)
	}

	// a is gone (its Run returned: its reply subscription ended), b is not
	// started: the service answers to nobody.
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	close(release)
	var failed []sdkAttempt
	timeout := time.After(15 * time.Second)
	for len(failed) == 0 || failed[len(failed)-1].end.Sub(failed[0].start) < 2*svcCfg.AckWait {
		select {
		case at := <-pub.attempts:
			if at.err == nil {
				t.Fatalf("reply publish %d to a's subject, nobody subscribing to it, succeeded", len(failed)+1)
			}
			if !errors.Is(at.err, brokers.ErrUnavailable) {
				t.Fatalf("reply publish %d to a's subject: %v, want brokers.ErrUnavailable (retried)", len(failed)+1, at.err)
			}
			failed = append(failed, at)
		case <-timeout:
			t.Fatalf("the service did not keep publishing its reply (%d attempts within 15s)", len(failed))
		}
	}
	gap := failed[len(failed)-1].end.Sub(failed[0].start)
	t.Logf("%d publishes to a's subject failed over %v while nobody subscribed (first: %v)", len(failed), gap.Round(time.Millisecond), failed[0].err)

	// b comes and adopts a; the service's next publish reaches it.
	b := startCluster(t, cfgB)
	bNode.Store(b.Node)
	testenv.Eventually(t, 15*time.Second, "b adopts a", adopted)
	adoptedAt := time.Now()
	var confirmed sdkAttempt
	for confirmed.end.IsZero() {
		select {
		case at := <-pub.attempts:
			switch {
			case at.err == nil:
				confirmed = at
			case !errors.Is(at.err, brokers.ErrUnavailable):
				t.Fatalf("reply publish %d: %v, want brokers.ErrUnavailable (retried)", len(failed)+1, at.err)
			default:
				failed = append(failed, at)
			}
		case <-timeout:
			t.Fatalf("the reply was not confirmed within 15s of a's death (%d attempts failed)", len(failed))
		}
	}
	if !confirmed.adoptedBefore {
		t.Errorf("the reply was confirmed by a publish that started before b adopted a")
	}
	t.Logf("reply confirmed %v after b adopted a, at attempt %d (%d failed)",
		confirmed.end.Sub(adoptedAt).Round(time.Millisecond), len(failed)+1, len(failed))

	var status int
	var body []byte
	testenv.Eventually(t, 5*time.Second, "the poll on b ends", func() bool {
		resp, got := send(t, "GET", b.base+location, nil, nil)
		status, body = resp.StatusCode, got
		return status != http.StatusAccepted
	})
	polled := time.Now()
	if status != http.StatusOK || string(body) != answer {
		t.Fatalf("poll on b: %d %s, want 200 %q", status, body, answer)
	}
	if !polled.Before(req.Deadline) {
		t.Errorf("poll on b answered at %v, after the request's deadline %v", polled, req.Deadline)
	}
	t.Logf("poll on b: 200 %v after b adopted a, %v before the deadline",
		polled.Sub(adoptedAt).Round(time.Millisecond), req.Deadline.Sub(polled).Round(time.Millisecond))
	if n := handled.Load(); n != 1 {
		t.Errorf("the service handled the request %d times, want 1 (the reply's publish retried, not the request)", n)
	}
	select {
	case at := <-pub.attempts:
		t.Errorf("the reply was published again after its confirmation (err %v)", at.err)
	default:
	}
}

// sdkPublisher records each publish attempt of a responder.Service.
type sdkPublisher struct {
	p        responder.Publisher
	adopted  func() bool // b consumes a's reply subject (set just before it subscribes)
	attempts chan sdkAttempt
}

type sdkAttempt struct {
	start, end    time.Time
	err           error
	adoptedBefore bool
}

func (p *sdkPublisher) Publish(ctx context.Context, dest string, m brokers.Message) error {
	at := sdkAttempt{start: time.Now(), adoptedBefore: p.adopted()}
	err := p.p.Publish(ctx, dest, m)
	at.end, at.err = time.Now(), err
	select {
	case p.attempts <- at:
	default:
	}
	return err
}

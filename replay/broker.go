package replay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/tap"
)

// BrokerRoute is what a replay to the broker needs of a gateway route:
// where its requests go, which headers they carry, how long a reply may
// take, and the wire profile.
type BrokerRoute struct {
	Destination string
	// ForwardHeaders are the request headers a request carries (the
	// route's allow-list, as the gateway forwards them).
	ForwardHeaders []string
	Timeout        time.Duration
	Profile        envelope.Profile
}

// Broker sends requests straight to the broker, as the gateway would
// publish them (the route's destination, allow-listed headers, profile,
// the original's principal), bypassing the gateway's HTTP API, its
// authentication and limits: an operator's tool. Each goes out with a
// correlation id of its own and Replay-Of naming the original, and its
// reply comes back to ReplyTo, an inbox of the replay's own, which Run
// consumes.
type Broker struct {
	Publisher  brokers.Publisher
	Subscriber brokers.Subscriber
	// Routes by route name: an exchange of a route not listed is not
	// sent.
	Routes  map[string]BrokerRoute
	ReplyTo string

	reg *correlation.Registry
}

// Run consumes the replies until ctx ends; ready is called once the inbox
// is consumed (then Send may start).
func (b *Broker) Run(ctx context.Context, ready func()) error {
	b.registry()
	err := b.Subscriber.Subscribe(ctx, b.ReplyTo, func(_ context.Context, m brokers.Message) error {
		rep, err := envelope.DecodeReply(m)
		if err == nil && !rep.Progress {
			b.reg.Deliver(rep)
		}
		return nil // a reply nobody waits for (late, garbage) is dropped
	}, brokers.AsInbox(), brokers.WithReady(ready))
	if err != nil {
		return fmt.Errorf("replay: consume the replies on %s: %w", b.ReplyTo, err)
	}
	return nil
}

func (b *Broker) registry() *correlation.Registry {
	if b.reg == nil {
		b.reg = correlation.NewRegistry()
	}
	return b.reg
}

// send publishes x's request and waits for its reply, up to its route's
// timeout: r.Status is the reply's, or 504 when none came in time.
func (b *Broker) send(ctx context.Context, x *tap.Exchange, extra http.Header, r *Result) {
	rt, ok := b.Routes[x.Route]
	if !ok {
		r.Error = fmt.Sprintf("route %q is not in the gateway's configuration", x.Route)
		return
	}
	if rt.Destination == "" {
		r.Error = fmt.Sprintf("route %q is scatter-gather: replay it through the gateway (without --to-broker)", x.Route)
		return
	}
	path, err := url.PathUnescape(x.Request.Path)
	if err != nil {
		path = x.Request.Path
	}
	id := correlation.NewID()
	req := envelope.Request{
		CorrelationID: id, ReplyTo: b.ReplyTo, Deadline: time.Now().Add(rt.Timeout),
		Method: x.Request.Method, Path: path, Query: x.Request.Query, Principal: x.Principal,
		Body: x.Request.Body, Header: map[string]string{HeaderReplayOf: x.CorrelationID},
	}
	header := make(http.Header, len(x.Request.Header)+len(extra))
	for k, vs := range x.Request.Header {
		header[http.CanonicalHeaderKey(k)] = vs
	}
	for k, vs := range extra {
		header[k] = vs
	}
	req.ContentType = header.Get("Content-Type")
	for _, name := range rt.ForwardHeaders {
		if vs := header.Values(name); len(vs) > 0 {
			req.Header[http.CanonicalHeaderKey(name)] = strings.Join(vs, ", ")
		}
	}
	m := req.Message()
	if rt.Profile != "" && rt.Profile != envelope.ProfileSyncgate {
		rt.Profile.Apply(m)
	}
	w, err := b.registry().Register(id)
	if err != nil {
		r.Error = err.Error()
		return
	}
	defer w.Cancel()
	r.ID = id
	if err := b.Publisher.Publish(ctx, rt.Destination, m); err != nil {
		r.Error = "publish: " + err.Error()
		return
	}
	t := time.NewTimer(rt.Timeout)
	defer t.Stop()
	select {
	case rep := <-w.C():
		r.Status = cmp.Or(rep.Status, http.StatusOK)
	case <-t.C:
		r.Status = http.StatusGatewayTimeout
	case <-ctx.Done():
		r.Error = ctx.Err().Error()
	}
}

var errNoReplyTo = errors.New("replay: the broker target needs a reply address")

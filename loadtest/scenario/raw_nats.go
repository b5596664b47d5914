package scenario

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/loadtest"
)

const (
	// rawNATSName is the nats scenario's floor.
	rawNATSName = "raw nats.go request/reply"
	// rawTraceParent stands for the W3C trace context the gateway's
	// requests and replies carry (its tracing middleware starts one).
	rawTraceParent = "00-2a1283b72e4259452a26121cbd9549ba-3e0d2be1453d00fb-01"
)

// rawNATS is nats.go's own request/reply, the floor of the nats scenario:
// RequestMsg on one connection (nats.go's shared reply subscription and map
// of waiters, what the gateway's inbox and registry do) to a queue
// subscription on another connection that answers from nats.go's callback
// with RespondMsg, in core NATS. A request carries the headers the
// gateway's envelope carries for the echo route (correlation-id, deadline,
// content-type, http-method, http-path, traceparent; reply-to is the
// protocol's reply subject instead), a reply correlation-id, status,
// content-type and traceparent, as demo.Echo's does through the gateway;
// the body is the scenario's payload with the request's id in it.
type rawNATS struct {
	req, svc *natsgo.Conn
	subject  string
	seq      atomic.Uint64
	prefix   string
}

func newRawNATS(url string) (_ *rawNATS, err error) {
	r := &rawNATS{prefix: randomSuffix()}
	r.subject = "loadtest.raw." + r.prefix
	defer func() {
		if err != nil {
			_ = r.close()
		}
	}()
	connect := func(name string) (*natsgo.Conn, error) {
		return natsgo.Connect(url, natsgo.Name(name), natsgo.Timeout(5*time.Second))
	}
	if r.req, err = connect("loadtest raw requester"); err != nil {
		return nil, err
	}
	if r.svc, err = connect("loadtest raw echo"); err != nil {
		return nil, err
	}
	_, err = r.svc.QueueSubscribe(r.subject, "loadtest", func(m *natsgo.Msg) {
		_ = m.RespondMsg(&natsgo.Msg{Header: natsgo.Header{
			envelope.CorrelationID: m.Header[envelope.CorrelationID],
			envelope.Status:        {"200"},
			envelope.ContentType:   m.Header[envelope.ContentType],
			envelope.TraceParent:   m.Header[envelope.TraceParent],
		}, Data: m.Data})
	})
	if err != nil {
		return nil, err
	}
	// The server has the subscription once a round trip after it returned.
	if err := r.svc.FlushTimeout(5 * time.Second); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rawNATS) op() loadtest.Op {
	return func(ctx context.Context) (int, error) {
		id := r.prefix + "-" + strconv.FormatUint(r.seq.Add(1), 10)
		body := rawBody(id)
		deadline := time.Now().Add(10 * time.Second).UTC().Format(envelope.DeadlineFormat)
		rep, err := r.req.RequestMsgWithContext(ctx, &natsgo.Msg{Subject: r.subject, Header: natsgo.Header{
			envelope.CorrelationID: {id},
			envelope.Deadline:      {deadline},
			envelope.ContentType:   {"application/json"},
			envelope.Method:        {"POST"},
			envelope.Path:          {"/demo/echo"},
			envelope.TraceParent:   {rawTraceParent},
		}, Data: body})
		if err != nil {
			return 0, fmt.Errorf("request %s: %w", id, err)
		}
		if got := rep.Header.Get(envelope.CorrelationID); got != id || string(rep.Data) != string(body) {
			return 0, fmt.Errorf("reply to %s: correlation id %q, body %q", id, got, rep.Data)
		}
		return 200, nil
	}
}

// close closes both connections (the server forgets the subscription with
// its connection).
func (r *rawNATS) close() error {
	for _, c := range []*natsgo.Conn{r.req, r.svc} {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

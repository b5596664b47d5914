package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// Gather is the rule that says when a scatter-gather request is complete.
type Gather string

const (
	// GatherAll waits for every part (or its timeout): 200 when all
	// answered 2xx, 502 when one did not.
	GatherAll Gather = "all"
	// GatherAny ends at the first 2xx part (200); 502 when every part
	// answered and none 2xx. The other parts' replies are ignored.
	GatherAny Gather = "any"
	// GatherQuorum ends when Route.Quorum parts answered 2xx (200), or
	// when so many failed that the quorum is out of reach (502).
	GatherQuorum Gather = "quorum"
)

// ParseGather validates a gather rule; empty means GatherAll.
func ParseGather(s string) (Gather, error) {
	switch Gather(s) {
	case "":
		return GatherAll, nil
	case GatherAll, GatherAny, GatherQuorum:
		return Gather(s), nil
	}
	return "", fmt.Errorf("gateway: unknown gather %q (want all, any or quorum)", s)
}

// Part is one destination of a scatter-gather route (Route.Parts).
type Part struct {
	// Name names the part in the response and to the service (the
	// envelope's part header); unique on its route.
	Name        string
	Destination string
	// Timeout is the part's own budget when shorter than the route's
	// (0: the route's): a part that has not replied within it has timed
	// out, and counts as failed.
	Timeout time.Duration
}

// Part states, as the response document names them.
const (
	PartDone      = "done"      // the service replied (any status)
	PartPending   = "pending"   // no reply yet
	PartTimeout   = "timeout"   // no reply within the part's budget
	PartFailed    = "failed"    // never published: the broker refused it
	PartCancelled = "cancelled" // the request was cancelled
)

// The statuses of scatter-gather responses and of their parts, spelled
// out: the use case does not link net/http.
const (
	statusOK = 200
	// StatusGatherFailed is the status of a scatter-gather response whose
	// rule failed: some part answered non-2xx, failed or timed out.
	StatusGatherFailed = 502
	// StatusGatherTimeout: a sync route's timeout passed with the rule
	// undecided; a part that timed out has it too.
	StatusGatherTimeout = 504
	// statusPartFailed is a part the broker refused.
	statusPartFailed = 503
)

// ContentTypeGather is the content type of a scatter-gather response.
const ContentTypeGather = "application/json"

// GatherDoc is the body of a scatter-gather response.
type GatherDoc struct {
	ID     string    `json:"id"`
	Gather Gather    `json:"gather"`
	Quorum int       `json:"quorum,omitempty"`
	Parts  []PartDoc `json:"parts"`
}

// PartDoc is one part in a GatherDoc. The body is embedded as JSON when
// the part's content type is JSON (application/json, +json) and the body
// is valid JSON; as text when it is text/* in UTF-8; else base64.
type PartDoc struct {
	Name        string            `json:"name"`
	Destination string            `json:"destination"`
	ID          string            `json:"id"`
	State       string            `json:"state"`
	Status      int               `json:"status,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Body        json.RawMessage   `json:"body,omitempty"`
	BodyText    *string           `json:"body_text,omitempty"`
	BodyBase64  []byte            `json:"body_base64,omitempty"`
	Error       string            `json:"error,omitempty"`
}

// partView is where one part of a scatter-gather request stands.
type partView struct {
	part  correlation.Part
	state string
	reply envelope.Reply // with PartDone
}

// good reports whether the part counts towards the rule: it replied 2xx.
func (v *partView) good() bool {
	s := v.reply.StatusCode()
	return v.state == PartDone && s >= 200 && s < 300
}

// decide applies rule (quorum for GatherQuorum) to the parts: decided
// when the outcome can no longer change, ok when the rule holds.
func decide(rule Gather, quorum int, parts []partView) (decided, ok bool) {
	good, bad := 0, 0
	for i := range parts {
		switch {
		case parts[i].good():
			good++
		case parts[i].state != PartPending:
			bad++
		}
	}
	n := len(parts)
	need := n
	switch rule {
	case GatherAny:
		need = 1
	case GatherQuorum:
		need = quorum
	}
	if rule == GatherAll {
		// All waits for every part, so the caller learns what each did
		// (a saga to compensate), even once one has failed.
		return good+bad == n, good == n
	}
	switch {
	case good >= need:
		return true, true
	case n-bad < need, good+bad == n:
		return true, false
	}
	return false, false
}

// gatherReply is the response of a scatter-gather request id: status 200
// when the rule held, 502 when it failed, 504 when it is undecided at the
// route's timeout (a sync route), with the document of its parts.
func gatherReply(id string, rule Gather, quorum int, parts []partView, status int) envelope.Reply {
	doc := GatherDoc{ID: id, Gather: rule, Parts: make([]PartDoc, len(parts))}
	if rule == GatherQuorum {
		doc.Quorum = quorum
	}
	for i := range parts {
		doc.Parts[i] = parts[i].doc()
	}
	body, err := json.Marshal(doc)
	if err != nil { // cannot happen: RawMessage is checked JSON
		body = []byte(`{"id":"` + id + `","error":"the parts could not be encoded"}`)
	}
	return envelope.Reply{CorrelationID: id, Status: status, ContentType: ContentTypeGather, Body: body}
}

func (v *partView) doc() PartDoc {
	d := PartDoc{Name: v.part.Name, Destination: v.part.Destination, ID: v.part.ID, State: v.state}
	switch v.state {
	case PartFailed:
		d.Status, d.Error = statusPartFailed, v.part.Failed
	case PartTimeout:
		d.Status = StatusGatherTimeout
	case PartDone:
		rep := &v.reply
		d.Status, d.ContentType, d.Headers = rep.StatusCode(), rep.ContentType, rep.Header
		embedBody(&d, rep.ContentType, rep.Body)
	}
	return d
}

// embedBody puts body into d as JSON, text or base64 (see PartDoc).
func embedBody(d *PartDoc, contentType string, body []byte) {
	if len(body) == 0 {
		return
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case (mt == "application/json" || strings.HasSuffix(mt, "+json")) && json.Valid(body):
		var buf bytes.Buffer
		if json.Compact(&buf, body) == nil {
			d.Body = buf.Bytes()
			return
		}
	case strings.HasPrefix(mt, "text/") && utf8.Valid(body):
		s := string(body)
		d.BodyText = &s
		return
	}
	d.BodyBase64 = body
}

// scatters reports whether r is a scatter-gather route.
func (r *Route) scatters() bool { return len(r.Parts) > 0 }

// rule is r's gather rule, GatherAll when unset.
func (r *Route) rule() Gather {
	if r.Gather == "" {
		return GatherAll
	}
	return r.Gather
}

// decide applies the route's rule to the parts as they stand.
func (gc *gatherCall) decide() (decided, ok bool) {
	return decide(gc.r.rule(), gc.r.Quorum, gc.parts)
}

// gatherCall is a scatter-gather request on its way through Do.
type gatherCall struct {
	*call
	parts []partView
	msgs  []brokers.Message
	ws    []*correlation.Waiter // while waiting; nil once the part ended
	// recorded: the parts' records and links were written before the
	// publish (async, or an Idempotency-Key a retry may attach to), so a
	// part's late reply goes to its record and settles the request.
	recorded bool
}

// gatherGrace keeps the record of a scatter-gather request this long past
// its route's timeout, so that a rule a timeout decided (a part that never
// replied) is read as the document with the parts that did, not a 404.
const gatherGrace = 30 * time.Second

// gather runs a scatter-gather request: one message per part, each with
// its own correlation id and waiter, and one answer for them all (see
// GatherDoc and decide).
func (c *call) gather(ctx context.Context) error {
	g, r := c.g, c.r
	g.gathers.Store(true)
	now := time.Now()
	c.deadline = now.Add(r.Timeout)
	gc := &gatherCall{call: c, parts: make([]partView, len(r.Parts)), msgs: make([]brokers.Message, len(r.Parts))}
	base := c.req.Message
	base.ReplyTo, base.Principal, base.ParentID = g.cfg.ReplyTo, c.req.Principal, c.out.ID
	for i, p := range r.Parts {
		cp := correlation.Part{Name: p.Name, Destination: p.Destination, ID: correlation.NewID()}
		deadline := c.deadline
		if p.Timeout > 0 && p.Timeout < r.Timeout {
			deadline = now.Add(p.Timeout)
			cp.Deadline = deadline
		}
		m := base
		m.CorrelationID, m.Deadline, m.Part = cp.ID, deadline, p.Name
		gc.msgs[i] = m.Message()
		gc.parts[i] = partView{part: cp, state: PartPending}
	}
	if err := c.gatherRoom(ctx, gc); err != nil {
		return err
	}
	if c.async {
		return gc.scatterOnly(ctx)
	}
	return gc.scatterAndWait(ctx)
}

// gatherRoom is makeRoom for a scatter-gather request: an async one, and
// one with an Idempotency-Key (a retry attaches to its record, so it must
// end even if this call does not), has its records written (the
// parent's, its parts', the links) before anything is published.
func (c *call) gatherRoom(ctx context.Context, gc *gatherCall) error {
	g := c.g
	switch {
	case c.async || c.keyed:
		if !c.keyed {
			if err := g.store.Pending(ctx, c.out.ID, c.req.Principal, c.r.Timeout+gatherGrace); err != nil {
				return storeError(err)
			}
		}
		if err := gc.record(ctx, false); err != nil {
			return gc.unscatter(ctx, err) // the parts written before the failure too
		}
		gc.recorded = true
	case c.r.Pollable() && g.bounded != nil:
		if err := g.bounded.Room(); err != nil {
			return storeError(err)
		}
	}
	return nil
}

// record writes the records of the parts and links them to the parent's
// (which exists): promised, for a request published already.
func (gc *gatherCall) record(ctx context.Context, promised bool) error {
	g := gc.g
	if g.parts == nil {
		return fmt.Errorf("%w: the result store cannot keep scatter-gather requests", ErrStore)
	}
	for i := range gc.parts {
		p := &gc.parts[i].part
		ttl := max(time.Until(gc.partDeadline(i)), time.Second)
		var err error
		if promised {
			err = g.promise(ctx, p.ID, gc.req.Principal, ttl)
		} else {
			err = g.store.Pending(ctx, p.ID, gc.req.Principal, ttl)
		}
		if err != nil {
			return storeError(err)
		}
	}
	if err := g.parts.SetParts(ctx, gc.out.ID, gc.gathering()); err != nil {
		return storeError(err)
	}
	return nil
}

// partDeadline is part i's budget: its own deadline, else the route's.
func (gc *gatherCall) partDeadline(i int) time.Time {
	if d := gc.parts[i].part.Deadline; !d.IsZero() {
		return d
	}
	return gc.deadline
}

// gathering is what the parent's record keeps.
func (gc *gatherCall) gathering() correlation.Gathering {
	gg := correlation.Gathering{Route: gc.r.Name, Rule: string(gc.r.rule()), Parts: make([]correlation.Part, len(gc.parts))}
	if gc.r.Gather == GatherQuorum {
		gg.Quorum = gc.r.Quorum
	}
	for i := range gc.parts {
		gg.Parts[i] = gc.parts[i].part
	}
	return gg
}

// partsStore is a Store that links scatter-gather requests with their
// parts (correlation.MemoryStore, redisstate.Store).
type partsStore interface {
	SetParts(ctx context.Context, parent string, g correlation.Gathering) error
}

// publishAll publishes the parts at once (a broker's acks come back in
// parallel) and marks those the broker refused failed. It returns the
// first refusal when every part was refused. The client going away does
// not stop it (publishTo's deadline bounds it): a request is published
// whole or not at all, never half, which neither a retry with its key nor
// the parts' replies could make sense of.
func (gc *gatherCall) publishAll(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	errs := make([]error, len(gc.parts))
	var wg sync.WaitGroup
	for i := range gc.parts {
		wg.Go(func() {
			errs[i] = gc.g.publishTo(ctx, gc.r, gc.parts[i].part.Destination, gc.msgs[i], gc.partDeadline(i))
		})
	}
	wg.Wait()
	refused := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		refused++
		gc.parts[i].state, gc.parts[i].part.Failed = PartFailed, "the broker did not take the part"
		gc.g.log.WarnContext(ctx, "scatter-gather: a part was not published",
			slog.String("correlation_id", gc.out.ID), slog.String("part", gc.parts[i].part.Name), slog.Any("error", err))
	}
	if refused == len(gc.parts) {
		return errors.Join(errs...)
	}
	return nil
}

// scatterOnly publishes an async scatter-gather request: 202 at once.
func (gc *gatherCall) scatterOnly(ctx context.Context) error {
	g := gc.g
	if err := gc.setCallback(ctx); err != nil {
		return gc.unscatter(ctx, err)
	}
	gc.out.Sent = time.Now()
	if err := gc.publishAll(ctx); err != nil {
		return gc.unscatter(ctx, err)
	}
	if gc.anyFailed() {
		// The manifest must say which parts will never reply.
		if err := g.parts.SetParts(context.WithoutCancel(ctx), gc.out.ID, gc.gathering()); err != nil {
			g.log.WarnContext(ctx, "scatter-gather: recording a failed part", slog.String("correlation_id", gc.out.ID), slog.Any("error", err))
		}
		g.settle(context.WithoutCancel(ctx), gc.out.ID, nil)
	}
	gc.settleAtDeadlines()
	gc.out.Accepted = true
	return nil
}

// settleAtDeadlines has the request settled at each of its parts' own
// deadlines and at its route's, on this node: a rule that a timeout
// decides is stored, and its callback queued, without waiting for a poll.
func (gc *gatherCall) settleAtDeadlines() {
	at := []time.Time{gc.deadline}
	for i := range gc.parts {
		if d := gc.parts[i].part.Deadline; !d.IsZero() && d.Before(gc.deadline) {
			at = append(at, d)
		}
	}
	gc.g.settleLater(gc.out.ID, at)
}

// unscatter undoes an async scatter-gather request nothing of which was
// published.
func (gc *gatherCall) unscatter(ctx context.Context, err error) error {
	for i := range gc.parts {
		_ = gc.g.store.Delete(context.WithoutCancel(ctx), gc.parts[i].part.ID)
	}
	return gc.fail(ctx, err)
}

func (gc *gatherCall) anyFailed() bool {
	for i := range gc.parts {
		if gc.parts[i].state == PartFailed {
			return true
		}
	}
	return false
}

// scatterAndWait registers a waiter per part, publishes them, and waits
// for the rule to decide, the wait to end (202 on pollable routes) or the
// route's timeout (504 with what came).
func (gc *gatherCall) scatterAndWait(ctx context.Context) error {
	g := gc.g
	gc.ws = make([]*correlation.Waiter, len(gc.parts))
	for i := range gc.parts {
		w, err := g.registry.Register(gc.parts[i].part.ID)
		if err != nil {
			gc.cancelWaiters(true)
			if errors.Is(err, correlation.ErrClosed) {
				return gc.fail(ctx, ErrShuttingDown)
			}
			return gc.fail(ctx, fmt.Errorf("gateway: register %s: %w", gc.parts[i].part.ID, err))
		}
		gc.ws[i] = w
		g.place.begin(ctx, gc.r, w.ID(), gc.req.Principal, false)
	}
	gc.out.Sent = time.Now()
	if err := gc.publishAll(ctx); err != nil {
		gc.cancelWaiters(true)
		for i := range gc.parts {
			g.place.unpublished(ctx, gc.r, gc.parts[i].part.ID, false)
		}
		return gc.unscatter(ctx, err) // each wraps ErrUnavailable (publishTo)
	}
	for i := range gc.parts {
		if gc.parts[i].state == PartFailed {
			gc.ws[i].Cancel()
			gc.ws[i] = nil
			g.place.unpublished(ctx, gc.r, gc.parts[i].part.ID, false)
		}
	}
	return gc.await(ctx)
}

// cancelWaiters removes the waiters still registered, keeping a reply
// that raced the removal. With unneeded, the request is answered without
// the parts still out: their late replies are ReplyUnneeded. Without it
// (a 202), their records take them.
func (gc *gatherCall) cancelWaiters(unneeded bool) {
	for i, w := range gc.ws {
		if w == nil {
			continue
		}
		if rep, ok := w.Cancel(); ok {
			gc.parts[i].state, gc.parts[i].reply = PartDone, rep
		} else if unneeded && !gc.recorded {
			gc.g.unneeded.add(w.ID())
		}
		gc.ws[i] = nil
	}
}

// await is call.await over several waiters: it selects on every part's
// channel, the next timer (the wait's end, or a part's own deadline), the
// client going away.
func (gc *gatherCall) await(ctx context.Context) error {
	g := gc.g
	waitEnd := time.Now().Add(gc.wait)
	cases := make([]reflect.SelectCase, len(gc.ws)+2)
	// Reset without draining: timer channels are synchronous since Go
	// 1.23, so no stale tick is received after a Reset.
	timer := time.NewTimer(gc.wait)
	defer timer.Stop()
	for {
		if decided, ok := gc.decide(); decided {
			gc.cancelWaiters(true)
			return gc.answer(ctx, ok, false)
		}
		now := time.Now()
		next := waitEnd
		for i := range gc.parts {
			p := &gc.parts[i]
			if p.state != PartPending || p.part.Deadline.IsZero() {
				continue
			}
			if !now.Before(p.part.Deadline) {
				gc.timeOut(i)
				continue
			}
			next = minTime(next, p.part.Deadline)
		}
		if decided, _ := gc.decide(); decided {
			continue
		}
		if !now.Before(waitEnd) {
			if g.holdWhileDraining(gc.r) && now.Before(gc.deadline) {
				waitEnd = gc.deadline // no 202 from a stopping node whose results die with it
				continue
			}
			return gc.giveUp(ctx, ErrTimeout)
		}
		timer.Reset(time.Until(next))
		for i, w := range gc.ws {
			cases[i] = reflect.SelectCase{Dir: reflect.SelectRecv}
			if w != nil {
				cases[i].Chan = reflect.ValueOf(w.C())
			}
		}
		cases[len(gc.ws)] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)}
		cases[len(gc.ws)+1] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}
		chosen, v, ok := reflect.Select(cases)
		switch {
		case chosen < len(gc.ws):
			if !ok {
				// The registry closed: the gateway is shutting down.
				return gc.giveUp(ctx, ErrShuttingDown)
			}
			gc.parts[chosen].state, gc.parts[chosen].reply = PartDone, v.Interface().(envelope.Reply)
			gc.ws[chosen] = nil
		case chosen == len(gc.ws)+1:
			// The client went away: keep nothing, unless a key lets a
			// retry attach to what is stored.
			gc.cancelWaiters(true)
			if decided, ok := gc.decide(); decided {
				return gc.answer(ctx, ok, false)
			}
			return ctx.Err()
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// timeOut ends part i at its own deadline.
func (gc *gatherCall) timeOut(i int) {
	if w := gc.ws[i]; w != nil {
		gc.ws[i] = nil
		if rep, ok := w.Cancel(); ok {
			gc.parts[i].state, gc.parts[i].reply = PartDone, rep
			return
		}
		if !gc.recorded {
			gc.g.unneeded.add(w.ID())
		}
	}
	gc.parts[i].state = PartTimeout
}

// answer ends the request with its document: 200 or 502 when decided,
// 504 when not (a sync route's timeout). A keyed request keeps it for
// retries.
func (gc *gatherCall) answer(ctx context.Context, ok, timedOut bool) error {
	status := statusOK
	switch {
	case timedOut:
		status = StatusGatherTimeout
	case !ok:
		status = StatusGatherFailed
	}
	rep := gatherReply(gc.out.ID, gc.r.rule(), gc.r.Quorum, gc.parts, status)
	gc.g.countParts(gc.r.Name, gc.parts)
	return gc.got(ctx, rep)
}

// giveUp ends a wait with the rule undecided: on a sync route (or a
// stopping node that cannot promise a 202) the parts still pending time
// out and the answer is 504 with what came; on a pollable route the
// request is answered 202, its parts' records written and linked first so
// that no reply is lost: a part's reply either came to its waiter (and is
// stored here) or finds its record.
func (gc *gatherCall) giveUp(ctx context.Context, cause error) error {
	g := gc.g
	if !gc.r.Pollable() || g.holdWhileDraining(gc.r) {
		gc.cancelWaiters(true)
		if decided, ok := gc.decide(); decided {
			return gc.answer(ctx, ok, false)
		}
		if gc.r.Pollable() || errors.Is(cause, ErrShuttingDown) {
			return ErrShuttingDown
		}
		for i := range gc.parts {
			if gc.parts[i].state == PartPending {
				gc.parts[i].state = PartTimeout
			}
		}
		return gc.answer(ctx, false, true)
	}
	wctx := context.WithoutCancel(ctx)
	ttl := max(time.Until(gc.deadline), time.Second) + gatherGrace
	storeErr := g.promise(wctx, gc.out.ID, gc.req.Principal, ttl)
	if storeErr == nil {
		storeErr = gc.record(wctx, true)
	}
	gc.cancelWaiters(false)
	if storeErr != nil {
		if decided, ok := gc.decide(); decided {
			return gc.answer(ctx, ok, false)
		}
		return storeError(storeErr)
	}
	// What came before the waiters were gone goes to the parts' records.
	for i := range gc.parts {
		if gc.parts[i].state == PartDone {
			_ = g.store.Complete(wctx, gc.parts[i].reply)
		}
	}
	if res, done := g.settle(wctx, gc.out.ID, nil); done {
		return gc.got(ctx, res.Reply)
	}
	// As in call.giveUp: a gather completed in between is answered here.
	if err := gc.accept(ctx); err != nil || !gc.out.Accepted {
		return err
	}
	gc.settleAtDeadlines()
	return nil
}

// partStored runs after the reply of id was stored: if id is a part of a
// scatter-gather request, that request may be complete now.
func (g *Gateway) partStored(ctx context.Context, id string) {
	if !g.gathers.Load() {
		return
	}
	res, err := g.store.Get(ctx, id)
	if err != nil || res.Parent == "" {
		return
	}
	g.settle(ctx, res.Parent, &res)
	g.hub.notify(res.Parent)
}

// settle reads the parts of the scatter-gather request parent and, when
// its rule has decided, stores its document as its reply (done reports
// it, with the record). part, when set, is the record of the part whose
// reply was just stored: an undecided request then gets a progress
// message naming it, for its polls and event streams.
func (g *Gateway) settle(ctx context.Context, parent string, part *correlation.Result) (res correlation.Result, done bool) {
	res, err := g.store.Get(ctx, parent)
	if err != nil || res.State != correlation.StatePending || res.Gather == nil {
		return res, err == nil && res.State == correlation.StateDone
	}
	return g.settleRecord(ctx, parent, res, part)
}

// settleRecord is settle on the record res of parent, read already.
func (g *Gateway) settleRecord(ctx context.Context, parent string, res correlation.Result, part *correlation.Result) (correlation.Result, bool) {
	gg := res.Gather
	rule, err := ParseGather(gg.Rule)
	if err != nil {
		return res, false
	}
	parts, err := g.readParts(ctx, gg.Parts)
	if err != nil {
		g.log.WarnContext(ctx, "scatter-gather: reading the parts failed", slog.String("correlation_id", parent), slog.Any("error", err))
		return res, false
	}
	decided, ok := decide(rule, gg.Quorum, parts)
	if !decided {
		if part != nil {
			g.partProgress(ctx, parent, parts, part.Reply.CorrelationID)
		}
		return res, false
	}
	status := statusOK
	if !ok {
		status = StatusGatherFailed
	}
	rep := gatherReply(parent, rule, gg.Quorum, parts, status)
	switch err := g.store.Complete(ctx, rep); {
	case err == nil:
		g.countParts(gg.Route, parts)
		g.hub.notify(parent)
		res.State, res.Reply = correlation.StateDone, rep
		return res, true
	case errors.Is(err, correlation.ErrCompleted):
		if r, err := g.store.Get(ctx, parent); err == nil {
			return r, r.State == correlation.StateDone
		}
	case errors.Is(err, correlation.ErrCancelled):
		res.State = correlation.StateCancelled
	default:
		g.log.WarnContext(ctx, "scatter-gather: storing the response failed", slog.String("correlation_id", parent), slog.Any("error", err))
	}
	return res, false
}

// readParts reads where each part stands from the store.
func (g *Gateway) readParts(ctx context.Context, parts []correlation.Part) ([]partView, error) {
	now := time.Now()
	views := make([]partView, len(parts))
	for i, p := range parts {
		views[i] = partView{part: p, state: PartPending}
		if p.Failed != "" {
			views[i].state = PartFailed
			continue
		}
		r, err := g.store.Get(ctx, p.ID)
		switch {
		case errors.Is(err, correlation.ErrNotFound):
			views[i].state = PartTimeout // its record expired with its budget
		case err != nil:
			return nil, err
		case r.State == correlation.StateDone:
			views[i].state, views[i].reply = PartDone, r.Reply
		case r.State == correlation.StateCancelled:
			views[i].state = PartCancelled
		case !p.Deadline.IsZero() && !now.Before(p.Deadline):
			views[i].state = PartTimeout
		}
	}
	return views, nil
}

// partProgress keeps a progress message on parent saying that the part id
// replied: its entry of the document (without its body when that is over
// MaxProgressBody).
func (g *Gateway) partProgress(ctx context.Context, parent string, parts []partView, id string) {
	for i := range parts {
		if parts[i].part.ID != id {
			continue
		}
		d := parts[i].doc()
		body, _ := json.Marshal(d)
		if len(body) > MaxProgressBody {
			d.Body, d.BodyText, d.BodyBase64, d.Headers = nil, nil, nil, nil
			body, _ = json.Marshal(d)
		}
		g.storeProgress(ctx, envelope.Reply{CorrelationID: parent, Progress: true, ContentType: "application/json", Body: body})
		return
	}
}

// gatherResult completes what the store holds for a scatter-gather
// request: a pending one whose rule has decided is settled on the read.
func (g *Gateway) gatherResult(ctx context.Context, id string, res correlation.Result) correlation.Result {
	if res.Gather == nil || res.State != correlation.StatePending {
		return res
	}
	if r, done := g.settleRecord(ctx, id, res, nil); done {
		r.Progress = res.Progress
		return r
	}
	return res
}

// cancelParts cancels the parts of a scatter-gather request that was
// cancelled, so that their late replies are discarded.
func (g *Gateway) cancelParts(ctx context.Context, id, principal string) {
	res, err := g.store.Get(ctx, id)
	if err != nil || res.Gather == nil {
		return
	}
	for _, p := range res.Gather.Parts {
		_ = g.store.Cancel(ctx, p.ID, principal)
	}
}

// PartCounts returns how many parts of decided scatter-gather requests
// ended in each state on this node, by route and part: "ok" (2xx),
// "error" (a reply of another status), "timeout", "failed" (not
// published), "pending" (still out when the rule decided without it).
func (g *Gateway) PartCounts() map[PartKey]uint64 {
	g.partMu.Lock()
	defer g.partMu.Unlock()
	m := make(map[PartKey]uint64, len(g.partCounts))
	for k, v := range g.partCounts {
		m[k] = v
	}
	return m
}

// PartKey labels PartCounts.
type PartKey struct{ Route, Part, Outcome string }

func (g *Gateway) countParts(route string, parts []partView) {
	g.partMu.Lock()
	defer g.partMu.Unlock()
	if g.partCounts == nil {
		g.partCounts = make(map[PartKey]uint64)
	}
	for i := range parts {
		outcome := parts[i].state
		switch {
		case parts[i].good():
			outcome = "ok"
		case outcome == PartDone:
			outcome = "error"
		}
		g.partCounts[PartKey{route, parts[i].part.Name, outcome}]++
	}
}

// settleSlack is how long after a deadline settleLater reads: the records
// that expire at the deadline are gone by then.
const settleSlack = 50 * time.Millisecond

// settleLater settles the scatter-gather request id at each of at. The
// timers are the gateway's: Close stops them, and one that fires after
// Close does nothing.
func (g *Gateway) settleLater(id string, at []time.Time) {
	g.timerMu.Lock()
	defer g.timerMu.Unlock()
	if g.timersClosed {
		return
	}
	if g.timers == nil {
		g.timers = make(map[*time.Timer]struct{})
	}
	for _, t := range at {
		var tm *time.Timer
		tm = time.AfterFunc(time.Until(t)+settleSlack, func() {
			g.timerMu.Lock()
			delete(g.timers, tm) // set: the creator held the lock until then
			closed := g.timersClosed
			g.timerMu.Unlock()
			if !closed {
				g.settle(context.Background(), id, nil)
			}
		})
		g.timers[tm] = struct{}{}
	}
}

// stopTimers stops settleLater's timers (Close).
func (g *Gateway) stopTimers() {
	g.timerMu.Lock()
	defer g.timerMu.Unlock()
	g.timersClosed = true
	for tm := range g.timers {
		tm.Stop()
	}
	g.timers = nil
}

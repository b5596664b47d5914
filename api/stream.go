package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/push"
)

// Event stream (Server-Sent Events) of an accepted request: GET
// /v1/requests/{id} with Accept: text/event-stream. Events, in order:
//
//   - pending (id 0), first on a new stream of a request still pending;
//   - progress (id = its sequence number, 1, 2, ...), one per progress
//     message the service sent;
//   - result (id = the last progress's + 1): the reply; the stream ends.
//
// Or the stream ends with one of these, which carry no id (the last one
// stays the client's resume point):
//
//   - cancelled: the request was cancelled (DELETE);
//   - timeout: its timeout passed without a reply;
//   - shutdown: the node is stopping (with retry:, to reconnect);
//   - error: the result store failed (with retry:).
//
// A reconnect with Last-Event-ID gets the events after that id (of the
// progress messages, the latest MaxProgressKept are kept), and 204 No
// Content once it has had the result, which tells an EventSource to stop.
const (
	eventPending   = "pending"
	eventProgress  = "progress"
	eventResult    = "result"
	eventCancelled = "cancelled"
	eventTimeout   = "timeout"
	eventShutdown  = "shutdown"
	eventError     = "error"
)

// Defaults of the stream's timing (Options.StreamHeartbeat,
// StreamWriteTimeout).
const (
	DefaultStreamHeartbeat    = 15 * time.Second
	DefaultStreamWriteTimeout = 10 * time.Second
)

// wantsEventStream reports whether the request asks for text/event-stream.
func wantsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// KeepReplyHeader reports whether a reply's header (lower-case name)
// reaches the client: the gateway writes it (writeReply), and puts it in
// a result event and a webhook's data.
func KeepReplyHeader(name string) bool { return !replyHeaderDenied[name] }

// endJSON is the data of the events that end a stream without a result.
type endJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// eventWriter writes events to one stream, each flushed within the write
// timeout: a client that does not read is cut off (it resumes with its
// Last-Event-ID), and the stream's memory never grows, since the events
// come from the store as the stream goes, not from a queue.
type eventWriter struct {
	out      io.Writer
	deadline func(time.Time) error // sets out's write deadline
	flush    func() error          // nil: out does not buffer
	timeout  time.Duration
	buf      bytes.Buffer
	err      error
	// retry, when set, goes with the next event: how long the client
	// waits before it reconnects.
	retry time.Duration
}

// event writes one event; id < 0 writes none.
func (ew *eventWriter) event(name string, id int, data any) {
	if ew.err != nil {
		return
	}
	ew.buf.Reset()
	ew.buf.WriteString("event: ")
	ew.buf.WriteString(name)
	if id >= 0 {
		ew.buf.WriteString("\nid: ")
		ew.buf.WriteString(strconv.Itoa(id))
	}
	if ew.retry > 0 {
		ew.buf.WriteString("\nretry: ")
		ew.buf.WriteString(strconv.FormatInt(ew.retry.Milliseconds(), 10))
		ew.retry = 0
	}
	ew.buf.WriteString("\ndata: ")
	b, err := json.Marshal(data) // one line: JSON escapes newlines
	if err != nil {
		ew.err = err
		return
	}
	ew.buf.Write(b)
	ew.buf.WriteString("\n\n")
	ew.write(ew.buf.Bytes())
	if ew.buf.Cap() > 4<<10 {
		ew.buf = bytes.Buffer{} // a large event's room is not kept for the stream's life
	}
}

// heartbeat writes a comment, which keeps proxies from closing an idle
// stream and finds a client that has gone.
func (ew *eventWriter) heartbeat() { ew.write([]byte(": keep-alive\n\n")) }

func (ew *eventWriter) write(b []byte) {
	if ew.err != nil {
		return
	}
	_ = ew.deadline(time.Now().Add(ew.timeout))
	if _, ew.err = ew.out.Write(b); ew.err == nil && ew.flush != nil {
		ew.err = ew.flush()
	}
}

// stream serves the event stream of request id (see the events above).
// Errors before the first event are problems, as for a poll.
func (s *server) stream(w http.ResponseWriter, r *http.Request, id, principal string) {
	last := -1 // no Last-Event-ID: a new stream
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			WriteProblem(w, r, ProblemBadRequest, "Last-Event-ID must be an event id of this stream (a whole number)", "")
			return
		}
		last = n
	}
	// Watch first, then read: an event stored in between still wakes
	// the stream.
	s.gw.Watch(r.Context(), id)
	res, err := s.gw.Events(r.Context(), id, principal, max(last, 0), 0)
	switch {
	case errors.Is(err, gateway.ErrStore) && r.Context().Err() == nil:
		// An EventSource gives up for good on a status other than 200
		// (and 204): a store outage answers with an error event and
		// retry:, so that it comes back.
		s.log.WarnContext(r.Context(), "event stream: reading the result failed", "error", err)
		ew := s.handlerStream(w, id)
		ew.retry = s.retryAfter
		ew.event(eventError, -1, endJSON{ID: id, Status: "unknown", Detail: "the result store is unavailable: reconnect with Last-Event-ID"})
		s.streamEnds.WithLabelValues(s.ended(ew, eventError)).Inc()
		return
	case err != nil:
		if r.Context().Err() == nil {
			s.writeRequestProblem(w, r, id, err)
		}
		return
	}
	switch {
	case res.State == correlation.StateCancelled:
		WriteProblem(w, r, ProblemRequestCancelled, "request "+id+" was cancelled", id)
		return
	case res.State == correlation.StateDone && last > res.Seq:
		// The client has had the result: 204 tells it not to reconnect.
		w.Header().Set(HeaderCorrelationID, id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	streamHeader(w.Header(), id)
	if s.detach(w, r, id, principal, last, res) {
		return
	}
	// HTTP/2, or a writer that cannot hand over its connection: the
	// stream runs in the handler.
	s.streams.Add(1)
	defer s.streams.Add(-1)
	s.run(r.Context(), s.handlerStream(w, id), id, principal, last, res)
}

// streamHeader sets the head of an event stream of request id.
func streamHeader(h http.Header, id string) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set(HeaderCorrelationID, id)
}

// handlerStream starts an event stream of request id on w, served in its
// handler, and returns its writer.
func (s *server) handlerStream(w http.ResponseWriter, id string) *eventWriter {
	streamHeader(w.Header(), id)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	return &eventWriter{out: w, deadline: rc.SetWriteDeadline, flush: rc.Flush, timeout: s.streamWriteTimeout}
}

// detach serves an HTTP/1 stream from a goroutine of its own on the bare
// connection, and returns from the handler: a stream then costs its
// connection, a small goroutine and its state, not a handler's stack
// under the whole middleware chain, net/http's buffers and its background
// reader (issue 20 measures it in many-streams). The body is delimited by
// the connection's close (Connection: close), as HTTP/1.1 allows. The
// stream keeps the request's in-flight slots until it ends. A client
// that goes away is found by the next write (a heartbeat at the latest).
// It reports false, having done nothing, when the connection cannot be
// taken over.
func (s *server) detach(w http.ResponseWriter, r *http.Request, id, principal string, last int, res correlation.Result) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	// Counted before the connection leaves net/http's sight: a shutdown
	// whose Server.Shutdown returns in between still waits for it.
	s.streamGroup.Add(1)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.streamGroup.Done()
		return false
	}
	release := middleware.KeepInFlight(r.Context())
	if info := middleware.InfoFrom(r.Context()); info != nil {
		info.Status = http.StatusOK // for the access log and metrics
	}
	head := w.Header().Clone()
	head.Set("Connection", "close")
	s.streams.Add(1)
	go func() {
		defer s.streamGroup.Done()
		defer s.streams.Add(-1)
		defer release()
		defer conn.Close()
		// The request's context ends when its handler returns; the
		// stream's is its own, ended at shutdown (see run).
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ew := &eventWriter{out: conn, deadline: conn.SetWriteDeadline, timeout: s.streamWriteTimeout}
		// Only net/http's reader is dropped: what it buffered beyond the
		// request (a pipelined one) is not served.
		_ = brw
		var b bytes.Buffer
		b.WriteString("HTTP/1.1 200 OK\r\n")
		_ = head.Write(&b)
		b.WriteString("\r\n")
		ew.write(b.Bytes())
		s.run(ctx, ew, id, principal, last, res)
	}()
	return true
}

// run writes the stream's first events, follows it, and counts how it
// ended.
func (s *server) run(ctx context.Context, ew *eventWriter, id, principal string, last int, res correlation.Result) {
	if last < 0 {
		last = 0
		if res.State == correlation.StatePending {
			ew.event(eventPending, 0, pendingBody{ID: id, Status: correlation.StatePending.String(), Location: PollPath + id})
		}
	} else {
		ew.write(nil) // flush the headers
	}
	end := s.follow(ctx, ew, id, principal, last, res)
	s.streamEnds.WithLabelValues(end).Inc()
}

// follow writes the events of res and of the records read after it until
// the stream ends, and returns how it ended.
func (s *server) follow(ctx context.Context, ew *eventWriter, id, principal string, last int, res correlation.Result) string {
	// The wait ends when the node stops streaming too.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.endStreams != nil {
		defer context.AfterFunc(s.endStreams, cancel)()
	}
	for {
		for _, p := range res.Progress {
			if p.Seq > last {
				ew.event(eventProgress, p.Seq, push.NewProgress(p))
				last = p.Seq
				s.streamEvents.Inc()
			}
		}
		switch res.State {
		case correlation.StateDone:
			ew.event(eventResult, res.Seq+1, push.NewResult(res.Reply, KeepReplyHeader))
			return s.ended(ew, eventResult)
		case correlation.StateCancelled:
			ew.event(eventCancelled, -1, endJSON{ID: id, Status: "cancelled", Detail: "the request was cancelled"})
			return s.ended(ew, eventCancelled)
		}
		wait := s.streamHeartbeat
		if !res.Expires.IsZero() {
			left := time.Until(res.Expires)
			if left <= 0 {
				ew.event(eventTimeout, -1, endJSON{ID: id, Status: "timeout", Detail: "the request's timeout passed without a reply"})
				return s.ended(ew, eventTimeout)
			}
			wait = min(wait, left)
		}
		if ew.err != nil {
			return "client"
		}
		var err error
		res, err = s.gw.Events(wctx, id, principal, last, wait)
		switch {
		case ctx.Err() != nil:
			return "client"
		case errors.Is(err, gateway.ErrShuttingDown) || wctx.Err() != nil:
			ew.retry = s.retryAfter
			ew.event(eventShutdown, -1, endJSON{ID: id, Status: "pending", Detail: "the node is stopping: reconnect with Last-Event-ID"})
			return s.ended(ew, eventShutdown)
		case errors.Is(err, gateway.ErrNotFound):
			// Expired between two reads.
			ew.event(eventTimeout, -1, endJSON{ID: id, Status: "timeout", Detail: "the request's timeout passed without a reply"})
			return s.ended(ew, eventTimeout)
		case errors.Is(err, gateway.ErrCancelled):
			res.State = correlation.StateCancelled
			continue
		case err != nil:
			s.log.WarnContext(ctx, "event stream: reading the result failed", "error", err)
			ew.retry = s.retryAfter
			ew.event(eventError, -1, endJSON{ID: id, Status: "pending", Detail: "the result store is unavailable: reconnect with Last-Event-ID"})
			return s.ended(ew, eventError)
		}
		if res.State == correlation.StatePending && len(res.Progress) == 0 {
			ew.heartbeat()
		}
	}
}

// ended returns how a stream ended: event, or "client" when the last
// write failed.
func (s *server) ended(ew *eventWriter, event string) string {
	if ew.err != nil {
		return "client"
	}
	return event
}

package envelope

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/syncgate/syncgate/brokers"
)

// Header names of the contract.
const (
	CorrelationID  = "correlation-id"  // both ways: gateway-generated UUID (v7)
	ReplyTo        = "reply-to"        // request: where the service sends the reply
	Deadline       = "deadline"        // request: RFC 3339 with milliseconds, UTC
	ContentType    = "content-type"    // both ways
	TraceParent    = "traceparent"     // both ways: W3C trace context
	TraceState     = "tracestate"      // both ways
	Method         = "http-method"     // request: original HTTP method
	Path           = "http-path"       // request: original path
	Query          = "http-query"      // request: original raw query, without '?'
	HeaderPrefix   = "http-header-"    // both ways: allow-listed HTTP headers
	Status         = "status"          // reply: HTTP status (default 200)
	IdempotencyKey = "idempotency-key" // request: the client's Idempotency-Key
	Principal      = "principal"       // request: the authenticated caller; absent when anonymous
	Progress       = "progress"        // reply: "true" marks an interim progress message, not the reply
	ParentID       = "parent-id"       // request: the HTTP request's id when this is one part of a scatter-gather
	Part           = "part"            // request: the part's name (scatter-gather)
)

// DeadlineFormat is the layout of the deadline header.
const DeadlineFormat = "2006-01-02T15:04:05.000Z07:00"

// MaxHeaderValue bounds one header value; longer values are invalid.
const MaxHeaderValue = 8 << 10

var (
	// ErrInvalid is wrapped by every validation error of this package.
	ErrInvalid = errors.New("envelope: invalid message")
	// ErrNoCorrelationID: the correlation-id header is missing or empty.
	ErrNoCorrelationID = fmt.Errorf("%w: no correlation-id", ErrInvalid)
	// ErrBadCorrelationID: the correlation-id header is not a canonical UUID.
	ErrBadCorrelationID = fmt.Errorf("%w: malformed correlation-id", ErrInvalid)
)

// Request is what the gateway publishes for one HTTP request.
type Request struct {
	CorrelationID  string
	ReplyTo        string
	Deadline       time.Time
	ContentType    string
	Method         string
	Path           string
	Query          string
	Header         map[string]string // allow-listed HTTP headers, lower-case names (values as Reply.Header's)
	TraceParent    string
	TraceState     string
	IdempotencyKey string
	// Principal is the caller the gateway authenticated ("" when
	// anonymous). Only the gateway sets it: callers' HTTP headers travel
	// under HeaderPrefix and can never produce it.
	Principal string
	// Key is the message key (the Kafka partition: messages with one key
	// keep their order). Empty: the correlation id, so requests spread
	// over the partitions.
	Key string
	// ParentID and Part name the scatter-gather request this message is
	// one part of: the id the caller polls (ParentID) and the part's
	// name on its route. Both empty for a request of a plain route.
	ParentID string
	Part     string
	Body     []byte
}

// Reply is what a service answers. Status 0 means 200.
type Reply struct {
	CorrelationID string
	Status        int
	ContentType   string
	// Header holds the response headers, lower-case names. A header with
	// several values (two Set-Cookie lines) is one entry, the values in
	// order joined by "\n": brokers.Message's convention for a header the
	// broker carries several times, kept as is so that every store and
	// codec holding a Reply keeps working unchanged.
	Header      map[string]string
	TraceParent string
	TraceState  string
	Body        []byte
	// Progress marks an interim progress message: a service may send any
	// number of them for a correlation id before its reply. The gateway
	// keeps the latest ones for polls and event streams of an accepted
	// request (only ContentType and Body count), and ignores them for a
	// request that holds its connection. Its header: progress: true.
	Progress bool
}

// StatusCode returns the HTTP status of the reply, 200 when unset.
func (r Reply) StatusCode() int {
	if r.Status == 0 {
		return 200
	}
	return r.Status
}

// Message encodes the request. The message key is Key, or the
// correlation id.
func (r Request) Message() brokers.Message {
	h := make(map[string]string, 8+len(r.Header))
	h[CorrelationID] = r.CorrelationID
	setIf(h, ReplyTo, r.ReplyTo)
	if !r.Deadline.IsZero() {
		h[Deadline] = r.Deadline.UTC().Format(DeadlineFormat)
	}
	setIf(h, ContentType, r.ContentType)
	setIf(h, Method, r.Method)
	setIf(h, Path, r.Path)
	setIf(h, Query, r.Query)
	setIf(h, TraceParent, r.TraceParent)
	setIf(h, TraceState, r.TraceState)
	setIf(h, IdempotencyKey, r.IdempotencyKey)
	setIf(h, Principal, r.Principal)
	setIf(h, ParentID, r.ParentID)
	setIf(h, Part, r.Part)
	for k, v := range r.Header {
		h[HeaderPrefix+strings.ToLower(k)] = v
	}
	key := r.Key
	if key == "" {
		key = r.CorrelationID
	}
	return brokers.Message{Key: key, Headers: h, Body: r.Body}
}

// Message encodes the reply. The message key is the correlation id.
func (r Reply) Message() brokers.Message {
	h := make(map[string]string, 6+len(r.Header))
	h[CorrelationID] = r.CorrelationID
	h[Status] = strconv.Itoa(r.StatusCode())
	setIf(h, ContentType, r.ContentType)
	setIf(h, TraceParent, r.TraceParent)
	setIf(h, TraceState, r.TraceState)
	if r.Progress {
		h[Progress] = "true"
	}
	for k, v := range r.Header {
		h[HeaderPrefix+strings.ToLower(k)] = v
	}
	return brokers.Message{Key: r.CorrelationID, Headers: h, Body: r.Body}
}

// DecodeRequest decodes and validates a request message (services use it).
func DecodeRequest(m brokers.Message) (Request, error) {
	id, err := ValidateID(m.Headers[CorrelationID])
	if err != nil {
		return Request{}, err
	}
	r := Request{
		CorrelationID:  id,
		ReplyTo:        m.Headers[ReplyTo],
		ContentType:    m.Headers[ContentType],
		Method:         m.Headers[Method],
		Path:           m.Headers[Path],
		Query:          m.Headers[Query],
		TraceParent:    m.Headers[TraceParent],
		TraceState:     m.Headers[TraceState],
		IdempotencyKey: m.Headers[IdempotencyKey],
		Principal:      m.Headers[Principal],
		Part:           m.Headers[Part],
		Body:           m.Body,
	}
	if p := m.Headers[ParentID]; p != "" {
		if r.ParentID, err = ValidateID(p); err != nil {
			return Request{}, fmt.Errorf("parent-id: %w", err)
		}
	}
	if m.Key != id {
		r.Key = m.Key // a route's key; the correlation id stays implicit
	}
	if d := m.Headers[Deadline]; d != "" {
		if r.Deadline, err = parseDeadline(d); err != nil {
			return Request{}, err
		}
	}
	if r.Header, err = prefixed(m.Headers); err != nil {
		return Request{}, err
	}
	return r, nil
}

// DecodeReply decodes and validates a reply message (or a progress
// message: see Reply.Progress). It rejects a missing or
// malformed correlation id, a status outside 200-599 (a final HTTP status:
// 1xx are not; spaces around the number are fine), a content type that is
// not one valid header value, and header names or values that could not be
// written to an HTTP response. A header value may hold several values
// joined by "\n" (see Reply.Header); each must be valid.
func DecodeReply(m brokers.Message) (Reply, error) {
	m = NormalizeReply(m) // a reply in another wire profile
	id, err := ValidateID(m.Headers[CorrelationID])
	if err != nil {
		return Reply{}, err
	}
	r := Reply{
		CorrelationID: id,
		ContentType:   m.Headers[ContentType],
		TraceParent:   m.Headers[TraceParent],
		TraceState:    m.Headers[TraceState],
		Body:          m.Body,
	}
	if p, ok := m.Headers[Progress]; ok {
		switch {
		case isTrue(p):
			r.Progress = true
		case isFalse(p):
		default:
			return Reply{}, fmt.Errorf("%w: progress %q is not true or false", ErrInvalid, truncate(p))
		}
	}
	if s, ok := m.Headers[Status]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 200 || n > 599 {
			return Reply{}, fmt.Errorf("%w: status %q is not an HTTP status code", ErrInvalid, truncate(s))
		}
		r.Status = n
	}
	if !ValidHeaderValue(r.ContentType) {
		return Reply{}, fmt.Errorf("%w: content-type value", ErrInvalid)
	}
	if r.Header, err = prefixed(m.Headers); err != nil {
		return Reply{}, err
	}
	return r, nil
}

// IsProgress reports whether m, a reply message in any profile, is marked
// as a progress message, whether or not it is valid otherwise: a progress
// message that breaks the contract is dropped, not taken for a reply.
func IsProgress(m brokers.Message) bool {
	return isTrue(NormalizeReply(m).Headers[Progress])
}

func isTrue(v string) bool {
	v = strings.TrimSpace(v)
	return v == "1" || strings.EqualFold(v, "true")
}

func isFalse(v string) bool {
	v = strings.TrimSpace(v)
	return v == "" || v == "0" || strings.EqualFold(v, "false")
}

// parseDeadline accepts any RFC 3339 time and normalises it to what Message
// writes: UTC, whole milliseconds (rounding down, so a deadline never moves
// later). A deadline that UTC puts outside years 0-9999 has no RFC 3339 form
// and is rejected, so whatever decodes also encodes.
func parseDeadline(d string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, d)
	if err != nil {
		// Not err itself: it quotes the whole value, however long.
		return time.Time{}, fmt.Errorf("%w: deadline %q is not an RFC 3339 time", ErrInvalid, truncate(d))
	}
	t = t.UTC().Truncate(time.Millisecond)
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("%w: deadline %q: out of range", ErrInvalid, truncate(d))
	}
	return t, nil
}

// ValidateID checks that s is a UUID in canonical 8-4-4-4-12 form and returns
// it in lower case.
func ValidateID(s string) (string, error) {
	if s == "" {
		return "", ErrNoCorrelationID
	}
	if len(s) != 36 {
		return "", fmt.Errorf("%w: %q", ErrBadCorrelationID, truncate(s))
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q", ErrBadCorrelationID, truncate(s))
	}
	return u.String(), nil
}

func prefixed(headers map[string]string) (map[string]string, error) {
	var out map[string]string
	for k, v := range headers {
		name, ok := strings.CutPrefix(k, HeaderPrefix)
		if !ok {
			continue
		}
		if !ValidHeaderName(name) {
			return nil, fmt.Errorf("%w: header name %q", ErrInvalid, truncate(k))
		}
		if !validHeaderValues(v) {
			return nil, fmt.Errorf("%w: value of header %q", ErrInvalid, truncate(name))
		}
		name = strings.ToLower(name)
		if _, dup := out[name]; dup {
			// Two keys differing only in case: which one a map iteration
			// meets last is random, so refuse to guess.
			return nil, fmt.Errorf("%w: header %q given twice", ErrInvalid, truncate(name))
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[name] = v
	}
	return out, nil
}

// validHeaderValues reports whether each of the values joined by "\n" in v
// is a valid header value.
func validHeaderValues(v string) bool {
	for part := range strings.SplitSeq(v, "\n") {
		if !ValidHeaderValue(part) {
			return false
		}
	}
	return true
}

// ValidHeaderName reports whether s is an RFC 9110 token.
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// ValidHeaderValue reports whether s can be written as an HTTP field value:
// no control characters other than tab, and at most MaxHeaderValue bytes.
func ValidHeaderValue(s string) bool {
	if len(s) > MaxHeaderValue {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func setIf(h map[string]string, k, v string) {
	if v != "" {
		h[k] = v
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

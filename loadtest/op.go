package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// NewClient returns an HTTP client for load: at most conns connections to
// a host, all kept alive, no client-wide timeout (operations have theirs).
func NewClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// Target is one HTTP request to repeat.
type Target struct {
	Client *http.Client // default http.DefaultClient
	Method string       // default POST when Body is set, else GET
	URL    string
	Header http.Header
	Body   []byte
	// Samples, when set, keeps the first response body of each status
	// of 400 and above (what a 503 problem said, for instance).
	Samples *Samples
}

// Samples keeps the first body seen per HTTP status (at most 512 bytes).
type Samples struct {
	mu sync.Mutex
	m  map[int]string
}

func (s *Samples) add(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[int]string)
	}
	if _, ok := s.m[status]; !ok {
		s.m[status] = string(body)
	}
}

// Get returns a copy of the samples by status.
func (s *Samples) Get() map[int]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// need reports whether a body of this status is still wanted.
func (s *Samples) need(status int) bool {
	if s == nil || status < 400 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[status]
	return !ok
}

func (t Target) client() *http.Client {
	if t.Client != nil {
		return t.Client
	}
	return http.DefaultClient
}

func (t Target) method() string {
	if t.Method != "" {
		return t.Method
	}
	if t.Body != nil {
		return http.MethodPost
	}
	return http.MethodGet
}

func (t Target) send(ctx context.Context, method, u string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range t.Header {
		req.Header[k] = vs
	}
	return t.client().Do(req)
}

// drain reads the body to the end so that the connection is reused,
// keeping a sample of it when samples wants one.
func drain(resp *http.Response, samples *Samples) error {
	if samples.need(resp.StatusCode) {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		samples.add(resp.StatusCode, head)
	}
	_, err := io.Copy(io.Discard, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return err
}

// Op sends the request once and reads the whole response.
func (t Target) Op() Op {
	method := t.method()
	return func(ctx context.Context) (int, error) {
		resp, err := t.send(ctx, method, t.URL, t.Body)
		if err != nil {
			return 0, err
		}
		if err := drain(resp, t.Samples); err != nil {
			return resp.StatusCode, err
		}
		return resp.StatusCode, nil
	}
}

// ErrNoLocation is returned when a 202 carries no Location to poll.
var ErrNoLocation = errors.New("loadtest: 202 without Location")

// PollStats counts what PollOp did, across all its operations.
type PollStats struct {
	Accepted atomic.Int64 // operations answered 202 first
	Polls    atomic.Int64 // GETs sent to a Location
}

// PollOp sends the request and, while the answer is 202 Accepted, polls its
// Location every interval until the answer is anything else, which is the
// operation's status: the operation's latency is the time to the result.
// maxPolls bounds the polls of one operation (default 10000); the
// operation's timeout bounds its time. stats may be nil.
func (t Target) PollOp(interval time.Duration, maxPolls int, stats *PollStats) Op {
	if maxPolls <= 0 {
		maxPolls = 10000
	}
	if stats == nil {
		stats = new(PollStats)
	}
	method := t.method()
	base, baseErr := url.Parse(t.URL)
	return func(ctx context.Context) (int, error) {
		if baseErr != nil {
			return 0, baseErr
		}
		resp, err := t.send(ctx, method, t.URL, t.Body)
		if err != nil {
			return 0, err
		}
		if err := drain(resp, t.Samples); err != nil || resp.StatusCode != http.StatusAccepted {
			return resp.StatusCode, err
		}
		stats.Accepted.Add(1)
		loc := resp.Header.Get("Location")
		if loc == "" {
			return resp.StatusCode, ErrNoLocation
		}
		ref, err := base.Parse(loc)
		if err != nil {
			return resp.StatusCode, fmt.Errorf("loadtest: bad Location %q: %w", loc, err)
		}
		timer := time.NewTimer(interval)
		defer timer.Stop()
		for range maxPolls {
			select {
			case <-timer.C:
			case <-ctx.Done():
				return http.StatusAccepted, ctx.Err()
			}
			stats.Polls.Add(1)
			resp, err := t.send(ctx, http.MethodGet, ref.String(), nil)
			if err != nil {
				return 0, err
			}
			if err := drain(resp, t.Samples); err != nil || resp.StatusCode != http.StatusAccepted {
				return resp.StatusCode, err
			}
			timer.Reset(interval)
		}
		return http.StatusAccepted, fmt.Errorf("loadtest: still 202 after %d polls", maxPolls)
	}
}

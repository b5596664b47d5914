package testenv

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Event is one Server-Sent Event.
type Event struct {
	Name, ID, Data, Retry string
}

// EventStream reads the events of one text/event-stream response. Its
// reader goroutine ends when the stream ends or Close is called.
type EventStream struct {
	Resp     *http.Response
	events   chan Event
	done     chan struct{}
	closing  chan struct{}
	once     sync.Once
	err      error // why the stream ended; valid once done is closed
	comments chan struct{}
}

// OpenStream GETs url with Accept: text/event-stream (and Last-Event-ID
// when lastID is not empty). A response that is not a 200 stream is
// returned with a nil stream, its body unread; the caller closes it.
func OpenStream(t testing.TB, client *http.Client, url, lastID string) (*EventStream, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return nil, resp
	}
	s := &EventStream{Resp: resp, events: make(chan Event, 64), done: make(chan struct{}), closing: make(chan struct{}), comments: make(chan struct{}, 64)}
	go s.read()
	t.Cleanup(s.Close)
	return s, resp
}

func (s *EventStream) read() {
	defer close(s.done)
	defer close(s.events)
	br := bufio.NewReader(s.Resp.Body)
	var ev Event
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.err = err
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if ev.Data != "" { // as an EventSource: a block without data is no event
				select {
				case s.events <- ev:
				case <-s.closing:
					s.err = io.ErrClosedPipe
					return
				}
				ev = Event{}
			}
		case strings.HasPrefix(line, ":"):
			select {
			case s.comments <- struct{}{}:
			default:
			}
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "":
			case "event":
				ev.Name = v
			case "id":
				ev.ID = v
			case "data":
				if ev.Data != "" {
					ev.Data += "\n"
				}
				ev.Data += v
			case "retry":
				ev.Retry = v
			}
		}
	}
}

// ErrStreamEnded: the server ended the stream.
var ErrStreamEnded = errors.New("testenv: the event stream ended")

// Next returns the next event, ErrStreamEnded once the server ended the
// stream, or an error after timeout.
func (s *EventStream) Next(timeout time.Duration) (Event, error) {
	select {
	case ev, ok := <-s.events:
		if !ok {
			if s.err == io.EOF {
				return Event{}, ErrStreamEnded
			}
			return Event{}, s.err
		}
		return ev, nil
	case <-time.After(timeout):
		return Event{}, errors.New("testenv: no event within " + timeout.String())
	}
}

// Comment waits up to timeout for a comment line (a heartbeat).
func (s *EventStream) Comment(timeout time.Duration) bool {
	select {
	case <-s.comments:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Close drops the connection and waits for the reader to stop.
func (s *EventStream) Close() {
	s.once.Do(func() { close(s.closing) })
	_ = s.Resp.Body.Close()
	<-s.done
}

package nats_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/internal/testenv"
)

// The tests need the NATS server, with JetStream, at SYNCGATE_NATS_URL
// (default nats://127.0.0.1:4222). It is shared: every name a test creates
// is unique to it and deleted when it ends, and no test stops the server.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// natsURL is the NATS server the tests use: SYNCGATE_NATS_URL, or
// nats.DefaultURL.
func natsURL() string {
	if u := os.Getenv("SYNCGATE_NATS_URL"); u != "" {
		return u
	}
	return nats.DefaultURL
}

// requireNATS returns natsURL once a connection to it opens and JetStream
// answers; otherwise the test fails under CI=true and is skipped elsewhere.
func requireNATS(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("this test needs NATS; -short (make check) runs only the tests that need no server, make test runs it")
	}
	u := natsURL()
	nc, err := natsgo.Connect(u, natsgo.Timeout(3*time.Second), natsgo.NoReconnect())
	if err != nil {
		testenv.Unavailable(t, "this test needs nats at %s, with JetStream (nats-server -js; SYNCGATE_NATS_URL names another): %v", u, err)
		return ""
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = js.AccountInfo(ctx)
		cancel()
	}
	if err != nil {
		testenv.Unavailable(t, "this test needs nats at %s with JetStream enabled (nats-server -js): %v", u, err)
	}
	return u
}

func unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// testConfig returns a configuration whose names (streams, dead-letter
// subject, body bucket, reply prefix) are unique to the test; every stream
// it leads to is deleted when the test ends.
func testConfig(t testing.TB, mode string) nats.Config {
	t.Helper()
	u := requireNATS(t)
	id := unique("sgtest")
	cfg := nats.Config{
		URL:               u,
		Name:              id,
		Mode:              mode,
		ReplyPrefix:       id + ".reply.",
		StreamPrefix:      strings.ToUpper(id) + "_",
		DeadLetter:        id + ".dead-letter",
		BodyBucket:        id + "_bodies",
		BodyTTL:           10 * time.Minute,
		Storage:           nats.StorageMemory,
		RetryDelay:        20 * time.Millisecond,
		ReconnectInterval: 100 * time.Millisecond,
	}
	a := newAdmin(t)
	t.Cleanup(func() { a.deleteStreams(cfg.StreamPrefix, "OBJ_"+cfg.BodyBucket) })
	return cfg
}

func dial(t testing.TB, cfg nats.Config) *nats.Client {
	t.Helper()
	c, err := nats.Dial(cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// admin is a plain nats.go connection for inspecting and cleaning up.
type admin struct {
	nc *natsgo.Conn
	js jetstream.JetStream
}

func newAdmin(t testing.TB) *admin {
	t.Helper()
	nc, err := natsgo.Connect(natsURL())
	if err != nil {
		t.Fatalf("admin connection: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &admin{nc: nc, js: js}
}

// deleteStreams deletes every stream whose name starts with prefix, and
// the streams named in exact.
func (a *admin) deleteStreams(prefix string, exact ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := a.js.StreamNames(ctx)
	var del []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) {
			del = append(del, n)
		}
	}
	for _, n := range append(del, exact...) {
		_ = a.js.DeleteStream(ctx, n)
	}
}

// messages returns the number of messages in stream, -1 if it does not
// exist.
func (a *admin) messages(stream string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := a.js.Stream(ctx, stream)
	if err != nil {
		return -1
	}
	info, err := st.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

// subscribe runs Subscribe in the background until the test ends and waits
// for its Ready callback.
func subscribe(t testing.TB, s brokers.Subscriber, source string, h brokers.Handler, opts ...brokers.SubscribeOption) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	opts = append(opts, brokers.WithReady(func() { close(ready) }))
	go func() { done <- s.Subscribe(ctx, source, h, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Subscribe(%s) returned %v", source, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Subscribe(%s) did not return 20s after its context ended", source)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Subscribe(%s) returned before ready: %v", source, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("Subscribe(%s) not ready within 20s", source)
	}
}

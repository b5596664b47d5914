package rabbitmq_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

// TestRepeatedHeaderTravelsAsArray: a header holding several values (joined
// by "\n", the contract of brokers.Message) is published as an AMQP array,
// which other AMQP clients read as a repeated header, and a subscription
// joins it again.
func TestRepeatedHeaderTravelsAsArray(t *testing.T) {
	cfg := testConfig(t)
	c := dial(t, cfg)
	a := newAdmin(t)
	plain, q := unique("sgtest.array.plain"), unique("sgtest.array")
	cleanupQueue(t, plain)
	cleanupQueue(t, q)
	if err := a.do(func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(plain, true, false, false, false, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const cookie = envelope.HeaderPrefix + "set-cookie"
	m := envelope.Reply{CorrelationID: uuid.NewString(), Header: map[string]string{"set-cookie": "a=1\nb=2"}}.Message()
	if err := c.Publish(t.Context(), plain, m); err != nil {
		t.Fatal(err)
	}
	d, ok := a.get(plain)
	if !ok {
		t.Fatal("message not in the queue after Publish returned")
	}
	if got, _ := d.Headers[cookie].([]any); !slices.Equal(got, []any{"a=1", "b=2"}) {
		t.Errorf("AMQP header %s = %#v, want the array [a=1 b=2]", cookie, d.Headers[cookie])
	}

	got := make(chan brokers.Message, 1)
	subscribe(t, c, q, func(_ context.Context, m brokers.Message) error { got <- m; return nil })
	if err := c.Publish(t.Context(), q, m); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.Headers[cookie] != "a=1\nb=2" {
			t.Errorf("subscriber got %s = %q, want %q", cookie, r.Headers[cookie], "a=1\nb=2")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not delivered within 10s")
	}
}

// TestForeignServiceTypedHeaders (issue 13, point 6): a Node.js service
// replying with amqplib as its users write it, {status: 201} a number and a
// repeated header an array, is read by a node's reply inbox as the
// contract's strings: status 201, not a silent 200.
func TestForeignServiceTypedHeaders(t *testing.T) {
	cfg := testConfig(t)
	script := installAmqplib(t)
	c := dial(t, cfg)
	inbox := unique("syncgate.reply")
	cleanupQueue(t, inbox)
	got := make(chan brokers.Message, 1)
	subscribe(t, c, inbox, func(_ context.Context, m brokers.Message) error { got <- m; return nil }, brokers.AsInbox())

	id := uuid.NewString()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "node", script, testenv.RabbitMQURL(), inbox, id).CombinedOutput(); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	var m brokers.Message
	select {
	case m = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the Node.js service's reply was not delivered within 10s")
	}
	want := map[string]string{
		envelope.Status:                      "201",
		envelope.HeaderPrefix + "x-count":    "3",
		envelope.HeaderPrefix + "x-ratio":    "1.5",
		envelope.HeaderPrefix + "x-flag":     "true",
		envelope.HeaderPrefix + "x-big":      "1099511627776",
		envelope.HeaderPrefix + "set-cookie": "a=1\nb=2",
		envelope.CorrelationID:               id,
		envelope.ContentType:                 "text/plain",
	}
	for k, v := range want {
		if m.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, m.Headers[k], v)
		}
	}
	// The gateway decodes it whole: status 201, two Set-Cookie values.
	rep, err := envelope.DecodeReply(m)
	if err != nil {
		t.Fatalf("the reply does not decode: %v", err)
	}
	if rep.StatusCode() != 201 || string(rep.Body) != "created" || rep.Header["set-cookie"] != "a=1\nb=2" {
		t.Errorf("reply %d %q, set-cookie %q; want 201 created, a=1 and b=2", rep.StatusCode(), rep.Body, rep.Header["set-cookie"])
	}
}

// installAmqplib installs testdata/amqplib (package-lock.json pins amqplib)
// into a temporary directory and returns the path of its reply.js. Without
// node and npm (or the npm registry) the test is skipped, or fails under
// CI=true.
func installAmqplib(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "%s not found (needed to run a Node.js amqplib service): %v", tool, err)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "reply.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "amqplib", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		testenv.Unavailable(t, "npm ci (amqplib) in %s: %v\n%s", dir, err, out)
	}
	return filepath.Join(dir, "reply.js")
}

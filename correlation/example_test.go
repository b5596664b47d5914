package correlation_test

import (
	"context"
	"fmt"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// A request registers before it publishes, waits for its reply or its
// deadline, and cancels on every path. The reply consumer delivers.
func ExampleRegistry() {
	reg := correlation.NewRegistry()
	defer reg.Close()

	id := "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f" // correlation.NewID() in real code
	w, err := reg.Register(id)
	if err != nil {
		fmt.Println("register:", err)
		return
	}
	defer w.Cancel()

	// The reply consumer, on its own goroutine in the gateway.
	go func() {
		rep := envelope.Reply{CorrelationID: id, Status: 201, Body: []byte(`{"ok":true}`)}
		if !reg.Deliver(rep) {
			fmt.Println("nobody waits: store the reply")
		}
	}()

	select {
	case rep := <-w.C():
		fmt.Println(rep.StatusCode(), string(rep.Body))
	case <-time.After(10 * time.Second):
		// Timed out: a reply that raced the timer is returned by Cancel.
		if rep, ok := w.Cancel(); ok {
			fmt.Println("late but in time:", rep.StatusCode())
		}
	}
	fmt.Println("waiting:", reg.Len())
	// Output:
	// 201 {"ok":true}
	// waiting: 0
}

// A request that outlived its wait is answered 202; its reply is stored for
// polling.
func ExampleMemoryStore() {
	ctx := context.Background()
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{
		MaxEntries: 10_000,
		ResultTTL:  5 * time.Minute,
	})
	id := "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f"

	_ = store.Pending(ctx, id, "", time.Minute) // the gateway answered 202
	res, _ := store.Get(ctx, id)
	fmt.Println(res.State)

	// The reply arrives after its waiter gave up: Deliver returned false.
	if err := store.Complete(ctx, envelope.Reply{CorrelationID: id, Body: []byte("hello")}); err != nil {
		fmt.Println("complete:", err)
	}
	res, _ = store.Get(ctx, id)
	fmt.Println(res.State, res.Reply.StatusCode(), string(res.Reply.Body))

	// A second reply for the same id is a duplicate.
	err := store.Complete(ctx, envelope.Reply{CorrelationID: id})
	fmt.Println(err)
	// Output:
	// pending
	// done 200 hello
	// correlation: request already completed
}

// Two gateway nodes in one process share a MemoryRouter (as nodes in
// several processes share Redis): node b consumed a reply that node a
// waits for, stores it for polling, then forwards it to a.
func ExampleMemoryRouter() {
	ctx := context.Background()
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	router := correlation.NewMemoryRouter(store)

	// Node a listens for forwarded replies, then claims its request (and
	// writes its pending record) before publishing it.
	got := make(chan envelope.Reply, 1)
	l, _ := router.Listen(ctx, "a", func(rep envelope.Reply) { got <- rep })
	defer l.Close()
	id := correlation.NewID()
	_ = router.ClaimPending(ctx, id, "a", "", time.Minute, time.Minute)

	// Node b has the reply: forwarding is at most once, so it stores first.
	rep := envelope.Reply{CorrelationID: id, Status: 200, Body: []byte("hello")}
	_ = store.Complete(ctx, rep)
	owner, delivered, _ := router.ForwardToOwner(ctx, "b", rep)
	fmt.Println("forwarded to", owner, delivered)
	fmt.Printf("a got %s\n", (<-got).Body)
	// Output:
	// forwarded to a true
	// a got hello
}

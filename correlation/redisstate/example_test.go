package redisstate_test

import (
	"context"
	"fmt"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation/redisstate"
)

// Node b consumed a reply that node a waits for: it stores the reply for
// polling, then forwards it to a through Redis.
func Example() {
	ctx := context.Background()
	cfg := redisstate.Config{Prefix: "syncgate-example:"}
	rdb, err := redisstate.NewClient(cfg)
	if err != nil {
		panic(err)
	}
	defer rdb.Close()
	store, router := redisstate.NewStore(rdb, cfg), redisstate.NewRouter(rdb, cfg)

	// Node a accepts the request and listens for forwarded replies.
	id := "example-1"
	got := make(chan envelope.Reply, 1)
	l, err := router.Listen(ctx, "a", func(rep envelope.Reply) { got <- rep })
	if err != nil {
		fmt.Println("no Redis:", err)
		return
	}
	defer l.Close()
	_ = store.Pending(ctx, id, "", time.Minute)
	_ = router.Claim(ctx, id, "a", time.Minute)
	defer router.Release(ctx, id, "a")
	defer store.Delete(ctx, id)

	// Node b has the reply.
	rep := envelope.Reply{CorrelationID: id, Status: 200, Body: []byte("hello")}
	_ = store.Complete(ctx, rep) // pub/sub is at-most-once: store first
	owner, _ := router.Owner(ctx, id)
	delivered, _ := router.Forward(ctx, owner, rep)
	fmt.Println("forwarded to", owner, delivered)
	fmt.Printf("a got %s\n", (<-got).Body)
}

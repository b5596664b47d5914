package loadtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/syncgate/syncgate/loadtest"
)

// Open loop at 200 requests per second for half a second, after a short
// warm-up: the number of requests is fixed by the schedule, and every
// latency counts from the request's intended send time.
func ExampleRun() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()

	target := loadtest.Target{Client: loadtest.NewClient(16), URL: srv.URL}
	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Name: "example", Rate: 200, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond,
	}, target.Op())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Mode, res.Requests, loadtest.StatusText(res.Status))
	// Output: open 100 200×100
}

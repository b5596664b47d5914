package floor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/syncgate/syncgate/loadtest/floor"
)

// The memory path's floor: a plain HTTP echo on a free loopback port.
// Gateway and Echo start the same way, with a Broker to publish to.
func ExampleEchoServer() {
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- floor.EchoServer(ctx, floor.EchoServerConfig{Listening: func(a string) { addr <- a }})
	}()
	resp, err := http.Post("http://"+<-addr+"/demo/echo", "text/plain", strings.NewReader("hello"))
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), string(body))
	} else {
		fmt.Println(err)
	}
	cancel()
	fmt.Println(<-done)
	// Output:
	// 200 text/plain hello
	// <nil>
}

package tlsreload_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/syncgate/syncgate/internal/tlsreload"
)

// An HTTPS server whose certificate follows its files: Run picks up a
// renewal within its interval, SIGHUP reads the files at once.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := tlsreload.New(tlsreload.Config{
		CertFile: "/etc/syncgate/tls.crt", KeyFile: "/etc/syncgate/tls.key",
		ClientCAFile: "/etc/syncgate/clients-ca.crt", Logger: slog.Default(),
	})
	if err != nil {
		log.Fatal(err) // names the file that did not load
	}
	go r.Run(ctx) // ends with ctx
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	srv := &http.Server{Addr: "127.0.0.1:8443", TLSConfig: r.TLSConfig()}
	go func() {
		for {
			select {
			case <-hup:
				_ = r.Reload() // a failure is logged; the previous certificate stays
			case <-ctx.Done():
				_ = srv.Close()
				return
			}
		}
	}()
	_ = srv.ListenAndServeTLS("", "") // the certificate comes from TLSConfig
}

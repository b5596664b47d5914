package nats

import (
	"context"
	"fmt"
)

// MaxPayload returns the largest message, headers and data, that the
// server the Client is connected to accepts (its max_payload, 1 MB by
// default). A message above it has its body carried by the body bucket
// (see the package doc).
func (c *Client) MaxPayload() int64 { return c.nc.MaxPayload() }

// CheckJetStream returns nil when the server offers JetStream to the
// Client's account: what carries bodies above MaxPayload, in core mode too.
func (c *Client) CheckJetStream(ctx context.Context) error {
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("nats: JetStream at %s: %w", c.nc.ConnectedUrlRedacted(), err)
	}
	return nil
}

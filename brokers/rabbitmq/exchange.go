package rabbitmq

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
)

// exchangePrefix starts a destination that names an exchange and a
// routing key instead of a queue (RabbitMQ's AMQP 1.0 address format v2).
const exchangePrefix = "/exchanges/"

// ExchangeAddress returns the destination that publishes to exchange with
// routing key key: /exchanges/EXCHANGE/KEY, percent-encoded.
func ExchangeAddress(exchange, key string) string {
	return exchangePrefix + url.PathEscape(exchange) + "/" + url.PathEscape(key)
}

// parseExchangeAddress splits an ExchangeAddress; ok is false for any
// other destination (a queue).
func parseExchangeAddress(dest string) (exchange, key string, ok bool, err error) {
	rest, ok := strings.CutPrefix(dest, exchangePrefix)
	if !ok {
		return "", "", false, nil
	}
	x, k, found := strings.Cut(rest, "/")
	if found {
		if exchange, err = url.PathUnescape(x); err == nil {
			key, err = url.PathUnescape(k)
		}
	}
	if !found || err != nil || exchange == "" {
		return "", "", true, fmt.Errorf("rabbitmq: destination %q: want /exchanges/EXCHANGE/ROUTING-KEY, percent-encoded", dest)
	}
	return exchange, key, true, nil
}

// checkExchange returns nil once exchange has been seen to exist, checking
// it with a passive declare the first time, on a connection of its own (the
// broker closes the channel of a failed declare, and of a publish to a
// missing exchange; on the publishing connection the recovery hook would
// reset the connection). A missing exchange is an error wrapping
// brokers.ErrUnroutable, checked again on the next publish.
func (c *Client) checkExchange(exchange string) error {
	if _, ok := c.exchanges.Load(exchange); ok {
		return nil
	}
	if _, up := c.gate(); !up {
		return fmt.Errorf("%w: rabbitmq: publish to exchange %q: connection down", brokers.ErrUnavailable, exchange)
	}
	ch, err := c.probeChannel()
	if err != nil {
		return fmt.Errorf("%w: rabbitmq: check exchange %q: %v", brokers.ErrUnavailable, exchange, err)
	}
	err = ch.ExchangeDeclarePassive(exchange, "direct", true, false, false, false, nil)
	_ = ch.Close()
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%w: rabbitmq: no exchange %q", brokers.ErrUnroutable, exchange)
		}
		return fmt.Errorf("%w: rabbitmq: check exchange %q: %v", brokers.ErrUnavailable, exchange, err)
	}
	c.exchanges.Store(exchange, struct{}{})
	return nil
}

// isNotFound reports whether err is the broker's 404 NOT_FOUND.
func isNotFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}

// probeChannel opens a channel on the probe connection, dialling it (no
// recovery: a lost one is dialled again on the next check).
func (c *Client) probeChannel() (*amqp.Channel, error) {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if c.ctx.Err() != nil {
		return nil, brokers.ErrClosed
	}
	if c.probe == nil || c.probe.IsClosed() {
		props := amqp.NewConnectionProperties()
		props["connection_name"] = c.cfg.ConnectionName + " exchange check"
		conn, err := amqp.DialConfig(c.cfg.URL, amqp.Config{
			Heartbeat: c.cfg.Heartbeat, Locale: "en_US", Properties: props, Dial: amqp.DefaultDial(c.cfg.DialTimeout),
		})
		if err != nil {
			return nil, err
		}
		c.probe = conn
	}
	return c.probe.Channel()
}

// closeProbe closes the probe connection, if any (Close).
func (c *Client) closeProbe() {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if c.probe != nil {
		_ = c.probe.Close()
		c.probe = nil
	}
}

package floor

import "context"

// Echo runs the naive echo service until ctx ends: every request on
// cfg's topic or queue is answered on its reply-to with its body, its
// correlation id and status 200, so it answers Gateway and syncgate's
// gateway alike.
func Echo(ctx context.Context, cfg EchoConfig) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Kind == Kafka {
		return kafkaEcho(ctx, cfg)
	}
	return rabbitEcho(ctx, cfg)
}

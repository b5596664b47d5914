package responder

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// deadLetteredDetail is what the caller reads in the 502 problem of a
// dead-lettered request; it names no internals.
const deadLetteredDetail = "the service failed on every attempt the broker allows"

// DeadLettered answers the caller of a request the backend gave up on (its
// handler failed on the last attempt; the request goes to the dead-letter
// destination): it publishes envelope.FailureReply(id, FailureDeadLettered)
// to the request's reply-to address, so the caller and a later poll get a
// 502 problem at once instead of waiting out the deadline. Serve installs
// it with brokers.WithDeadLetter; pass it yourself when you subscribe
// Handler on your own.
//
// Requests without a valid correlation id or reply-to, or whose deadline
// has passed, are only logged: nobody can be, or is, waiting. The publish is
// retried like a reply (see the package doc) until the deadline; the
// message's queue slot or partition waits meanwhile.
func (s *Service) DeadLettered(ctx context.Context, m brokers.Message, cause error) {
	log := s.logger()
	req, err := envelope.DecodeRequest(m)
	if err != nil {
		log.WarnContext(ctx, "invalid request dead-lettered; nobody to answer", slog.Any("error", err), slog.Any("cause", cause))
		return
	}
	rlog := requestLog{log, req.CorrelationID}
	switch {
	case req.ReplyTo == "":
		rlog.Warn(ctx, "request without reply-to dead-lettered", slog.Any("cause", cause))
		return
	case !req.Deadline.IsZero() && !time.Now().Before(req.Deadline):
		rlog.Warn(ctx, "expired request dead-lettered; its caller waits no more", slog.Any("cause", cause))
		return
	}
	rlog.Warn(ctx, "request dead-lettered after failing on every attempt; answering 502", slog.Any("cause", cause))
	rep := envelope.FailureReply(req.CorrelationID, envelope.FailureDeadLettered, deadLetteredDetail)
	rep.TraceParent, rep.TraceState = req.TraceParent, req.TraceState
	err = s.publishReply(ctx, rlog, req.ReplyTo, rep.Message(), s.replyUntil(req))
	switch {
	case errors.Is(err, errReplyExpired):
		rlog.Warn(ctx, "dropping the dead-letter reply: the broker was unavailable until the request's deadline", slog.Any("error", err))
	case err != nil:
		rlog.Warn(ctx, "cannot send the dead-letter reply; the caller waits out its deadline", slog.Any("error", err))
	}
}

func (s *Service) logger() *slog.Logger {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	return log.With(slog.String("component", "responder"))
}

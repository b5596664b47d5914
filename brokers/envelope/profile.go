package envelope

import (
	"fmt"
	"slices"

	"github.com/syncgate/syncgate/brokers"
)

// A Profile is a wire contract of another ecosystem that a route's
// requests also speak, so that a service written for that ecosystem
// answers without changes. The request keeps syncgate's own headers and
// gets the profile's on top; a reply in any profile is recognised
// (NormalizeReply) whatever the route's profile.
type Profile string

// The profiles.
const (
	// ProfileSyncgate is syncgate's own contract (this package).
	ProfileSyncgate Profile = "syncgate"
	// ProfileSpring is Spring for Apache Kafka's request/reply
	// (ReplyingKafkaTemplate, an @SendTo listener): the correlation in
	// kafka_correlationId, which the listener copies to its reply as it is
	// (bytes), the reply topic in kafka_replyTopic. A reply has no status
	// (200) and its content type in contentType. On RabbitMQ, Spring AMQP
	// reads the correlation_id and reply_to properties syncgate always
	// sets: the profile adds nothing there.
	ProfileSpring Profile = "spring"
	// ProfileZilla is Zilla's http-kafka binding: zilla:correlation-id and
	// zilla:reply-to; a reply's status in :status. Kafka only.
	ProfileZilla Profile = "zilla"
	// ProfileCloudEvents is CloudEvents 1.0 in binary content mode (Kafka
	// protocol binding): ce_specversion 1.0, ce_id (the correlation id),
	// ce_source /syncgate, ce_type syncgate.request, and two extension
	// attributes: ce_correlationid, which a reply carries back, and
	// ce_replyto, where to send it; a reply's status may be in the
	// extension ce_httpstatus. A progress message has ce_type
	// syncgate.progress (CETypeProgress).
	ProfileCloudEvents Profile = "cloudevents"
	// ProfileCloudEventsAMQP is ProfileCloudEvents in the AMQP binding's
	// naming, for RabbitMQ: the same attributes as headers prefixed
	// cloudEvents: (cloudEvents:specversion, cloudEvents:correlationid,
	// ...). A route configured cloudevents on RabbitMQ gets it.
	ProfileCloudEventsAMQP Profile = "cloudevents-amqp"
)

// Profiles lists the valid profiles.
var Profiles = []Profile{ProfileSyncgate, ProfileSpring, ProfileZilla, ProfileCloudEvents}

// Header names of the profiles.
const (
	SpringCorrelationID = "kafka_correlationId"
	SpringReplyTopic    = "kafka_replyTopic"
	SpringContentType   = "contentType"
	ZillaCorrelationID  = "zilla:correlation-id"
	ZillaReplyTo        = "zilla:reply-to"
	ZillaStatus         = ":status"
	CESpecVersion       = "ce_specversion"
	CEID                = "ce_id"
	CESource            = "ce_source"
	CEType              = "ce_type"
	CECorrelationID     = "ce_correlationid"
	CEReplyTo           = "ce_replyto"
	CEHTTPStatus        = "ce_httpstatus"
	// CETypeProgress is the ce_type of a progress message (Reply.Progress)
	// in the CloudEvents profiles. The other profiles mark one with the
	// progress header, as syncgate's own contract does.
	CETypeProgress = "syncgate.progress"
	// CEAMQPPrefix starts the CloudEvents attributes in AMQP headers.
	CEAMQPPrefix = "cloudEvents:"
)

// ParseProfile returns the profile named s ("" is syncgate's).
func ParseProfile(s string) (Profile, error) {
	if s == "" {
		return ProfileSyncgate, nil
	}
	p := Profile(s)
	if !slices.Contains(Profiles, p) {
		return "", fmt.Errorf("unknown wire profile %q (want syncgate, spring, zilla or cloudevents)", s)
	}
	return p, nil
}

// Apply adds p's headers to the request message m (encoded by
// Request.Message), from its correlation-id and reply-to.
func (p Profile) Apply(m brokers.Message) {
	id, replyTo := m.Headers[CorrelationID], m.Headers[ReplyTo]
	switch p {
	case ProfileSpring:
		m.Headers[SpringCorrelationID] = id
		setIf(m.Headers, SpringReplyTopic, replyTo)
	case ProfileZilla:
		m.Headers[ZillaCorrelationID] = id
		setIf(m.Headers, ZillaReplyTo, replyTo)
	case ProfileCloudEvents, ProfileCloudEventsAMQP:
		prefix := "ce_"
		if p == ProfileCloudEventsAMQP {
			prefix = CEAMQPPrefix
		}
		m.Headers[prefix+"specversion"] = "1.0"
		m.Headers[prefix+"id"] = id
		m.Headers[prefix+"source"] = "/syncgate"
		m.Headers[prefix+"type"] = "syncgate.request"
		m.Headers[prefix+"correlationid"] = id
		setIf(m.Headers, prefix+"replyto", replyTo)
	}
}

// NormalizeReply returns the reply message m in syncgate's contract: a
// message without a correlation-id header that carries one in another
// profile's header (kafka_correlationId, zilla:correlation-id,
// ce_correlationid) gets it, and the profile's status and content type
// become status and content-type. Other messages are returned as they
// are. The headers are copied before they are changed.
func NormalizeReply(m brokers.Message) brokers.Message {
	if _, ok := m.Headers[CorrelationID]; ok {
		return m
	}
	var id, status, ctype string
	progress := false
	switch {
	case m.Headers[SpringCorrelationID] != "":
		id, ctype = m.Headers[SpringCorrelationID], m.Headers[SpringContentType]
	case m.Headers[ZillaCorrelationID] != "":
		id, status = m.Headers[ZillaCorrelationID], m.Headers[ZillaStatus]
	case m.Headers[CECorrelationID] != "":
		id, status = m.Headers[CECorrelationID], m.Headers[CEHTTPStatus]
		progress = m.Headers[CEType] == CETypeProgress
	case m.Headers[CEAMQPPrefix+"correlationid"] != "":
		id, status = m.Headers[CEAMQPPrefix+"correlationid"], m.Headers[CEAMQPPrefix+"httpstatus"]
		progress = m.Headers[CEAMQPPrefix+"type"] == CETypeProgress
	default:
		return m
	}
	h := make(map[string]string, len(m.Headers)+2)
	for k, v := range m.Headers {
		h[k] = v
	}
	h[CorrelationID] = id
	if status != "" {
		if _, ok := h[Status]; !ok {
			h[Status] = status
		}
	}
	if ctype != "" {
		if _, ok := h[ContentType]; !ok {
			h[ContentType] = ctype
		}
	}
	if progress {
		h[Progress] = "true"
	}
	m.Headers = h
	return m
}

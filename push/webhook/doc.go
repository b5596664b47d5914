// Package webhook signs and delivers completion callbacks the way the
// Standard Webhooks specification (standardwebhooks.com) describes, and
// guards the deliveries against server-side request forgery.
//
// A delivery carries three headers: webhook-id (the message id; a retry
// keeps it, so receivers can drop duplicates), webhook-timestamp (Unix
// seconds) and webhook-signature: one "v1,<base64>" per secret, each the
// HMAC-SHA256 of "<id>.<timestamp>.<body>" keyed by the secret's bytes.
// Signing with two secrets at once lets a receiver rotate: it accepts
// either while it moves from the old secret to the new one. Secrets are
// written "whsec_" followed by the base64 of the key, as the
// specification's libraries write them.
//
// Guard refuses callback URLs outside allowed host patterns, and
// connections to loopback, private, link-local and other non-public
// addresses unless they are explicitly allowed, checked on the address
// actually dialled (after DNS, on every redirect).
package webhook

package outbox

import (
	"cmp"
	"slices"

	"github.com/syncgate/syncgate/brokers"
)

func messageOf(key string, headers map[string]string, body []byte) brokers.Message {
	return brokers.Message{Key: key, Headers: headers, Body: body}
}

func sortBySeq(items []Item) {
	slices.SortFunc(items, func(a, b Item) int { return cmp.Compare(a.Seq, b.Seq) })
}

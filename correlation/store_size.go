package correlation

import "github.com/syncgate/syncgate/brokers/envelope"

// What a record costs, as counted against MemoryStoreConfig.MaxBytes: the
// bytes it holds plus a fixed overhead, so that the budget bounds the heap
// and not only the payloads. The figures are measured
// (TestRecordOverhead): they need not be exact, only not far below the
// truth.
const (
	// recordOverhead is one record without its strings and body: the
	// record with its Result and Reply, its map slot and heap item, about
	// 220 B measured, rounded up for map growth and allocator classes.
	recordOverhead = 320
	// headerOverhead is one entry of a reply's header map besides its
	// strings; the map itself counts as one more entry.
	headerOverhead = 64
)

// recordSize is the size of a record for id holding rep (nil: pending).
// The body counts by capacity: that is what the record keeps alive.
func recordSize(id string, rep *envelope.Reply) int64 {
	n := recordOverhead + len(id)
	if rep != nil {
		n += len(rep.CorrelationID) + len(rep.ContentType) + len(rep.TraceParent) + len(rep.TraceState) + cap(rep.Body)
		if rep.Header != nil {
			n += headerOverhead
			for k, v := range rep.Header {
				n += headerOverhead + len(k) + len(v)
			}
		}
	}
	return int64(n)
}

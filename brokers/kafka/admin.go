package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// admin runs the few cluster requests a subscription needs (metadata, topic
// creation, offsets). It owns a kafka-go Transport whose metadata is limited
// to one topic and fetched fresh when the admin is made, so a topic created a
// moment ago by someone else is seen.
type admin struct {
	cfg       *Config
	transport *kafkago.Transport
	client    *kafkago.Client
}

func newAdmin(cfg *Config, sec security, topic string) *admin {
	t := cfg.transport(sec, topic)
	return &admin{
		cfg:       cfg,
		transport: t,
		client:    &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Transport: t, Timeout: cfg.WriteTimeout},
	}
}

func (a *admin) close() { a.transport.CloseIdleConnections() }

// partitions returns the partition ids of topic, kafkago.UnknownTopicOrPartition
// when it does not exist.
func (a *admin) partitions(ctx context.Context, topic string) ([]int, error) {
	md, err := a.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, t.Error
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		if len(ids) == 0 {
			return nil, kafkago.LeaderNotAvailable
		}
		return ids, nil
	}
	return nil, kafkago.UnknownTopicOrPartition
}

// batchOverhead is what a record batch adds to the records' own bytes, with
// room to spare: batch header, per-record lengths and varints.
const batchOverhead = 16 << 10

// createTopic creates topic; one that already exists is not an error.
func (a *admin) createTopic(ctx context.Context, topic string, partitions int, retention time.Duration) error {
	tc := kafkago.TopicConfig{
		Topic:             topic,
		NumPartitions:     partitions,
		ReplicationFactor: a.cfg.ReplicationFactor,
	}
	// Room for one record of MaxMessageBytes in a batch: the broker default
	// (1 MiB + 12 bytes) refuses a 1 MiB body with its headers.
	tc.ConfigEntries = []kafkago.ConfigEntry{{
		ConfigName:  "max.message.bytes",
		ConfigValue: strconv.Itoa(a.cfg.MaxMessageBytes + batchOverhead),
	}}
	if retention > 0 {
		tc.ConfigEntries = append(tc.ConfigEntries, kafkago.ConfigEntry{
			ConfigName:  "retention.ms",
			ConfigValue: strconv.FormatInt(retention.Milliseconds(), 10),
		})
	}
	res, err := a.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{tc}})
	if err != nil {
		return err
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return fmt.Errorf("create topic %q: %w", topic, err)
	}
	return nil
}

// ensureTopic returns the partitions of topic, creating it when create.
func (a *admin) ensureTopic(ctx context.Context, topic string, create bool, partitions int, retention time.Duration) ([]int, error) {
	ids, err := a.partitions(ctx, topic)
	if !errors.Is(err, kafkago.UnknownTopicOrPartition) || !create {
		return ids, err
	}
	if err := a.createTopic(ctx, topic, partitions, retention); err != nil {
		return nil, err
	}
	return a.partitions(ctx, topic)
}

// committed returns the committed offset of each partition of topic for
// group, or def for a partition with none.
func (a *admin) committed(ctx context.Context, group, topic string, partitions []int, def int64) (map[int]int64, error) {
	res, err := a.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{
		GroupID: group,
		Topics:  map[string][]int{topic: partitions},
	})
	if err != nil {
		return nil, err
	}
	offsets := make(map[int]int64, len(partitions))
	for _, p := range partitions {
		offsets[p] = def
	}
	if errors.Is(res.Error, kafkago.GroupIdNotFound) {
		return offsets, nil // never committed: brokers may say so, or answer -1
	}
	if res.Error != nil {
		return nil, res.Error
	}
	for _, p := range res.Topics[topic] {
		if errors.Is(p.Error, kafkago.GroupIdNotFound) {
			continue
		}
		if p.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Partition, p.Error)
		}
		if _, ok := offsets[p.Partition]; ok && p.CommittedOffset >= 0 {
			offsets[p.Partition] = p.CommittedOffset
		}
	}
	return offsets, nil
}

// commit stores offsets for group as a "simple" commit (generation -1, no
// member): the group has no members, the inbox consumer owns its partitions
// by configuration, not by assignment.
func (a *admin) commit(ctx context.Context, group, topic string, offsets map[int]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	commits := make([]kafkago.OffsetCommit, 0, len(offsets))
	for p, o := range offsets {
		commits = append(commits, kafkago.OffsetCommit{Partition: p, Offset: o})
	}
	res, err := a.client.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{
		GroupID:      group,
		GenerationID: -1,
		Topics:       map[string][]kafkago.OffsetCommit{topic: commits},
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", p.Partition, p.Error))
		}
	}
	return errors.Join(errs...)
}

// topicExists asks the cluster, bypassing any cached metadata.
func topicExists(ctx context.Context, cfg *Config, sec security, topic string) (bool, error) {
	a := newAdmin(cfg, sec, topic)
	defer a.close()
	_, err := a.partitions(ctx, topic)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, kafkago.UnknownTopicOrPartition):
		return false, nil
	default:
		return false, err
	}
}

// bounds returns the first and the last offset (the next to be written) of
// each partition of topic.
func (a *admin) bounds(ctx context.Context, topic string, partitions []int) (first, last map[int]int64, err error) {
	reqs := make([]kafkago.OffsetRequest, 0, 2*len(partitions))
	for _, p := range partitions {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	res, err := a.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, nil, err
	}
	first, last = make(map[int]int64, len(partitions)), make(map[int]int64, len(partitions))
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, nil, fmt.Errorf("partition %d: %w", p.Partition, p.Error)
		}
		first[p.Partition], last[p.Partition] = p.FirstOffset, p.LastOffset
	}
	for _, p := range partitions {
		if _, ok := last[p]; !ok {
			return nil, nil, fmt.Errorf("partition %d: no offsets listed: %w", p, kafkago.UnknownTopicOrPartition)
		}
	}
	return first, last, nil
}

package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/orderflow/orderflow/metastore"
	"github.com/orderflow/orderflow/order"
)

// baseline is the pipeline as a straightforward Watermill application
// would write it, for comparison: the stock watermill-kafka publisher and
// subscriber, a MongoDB lookup for each message, and a status update_one
// for each message, as the original Python version did.
type baseline struct {
	brokers []string
	db      *mongo.Database
	topics  [5]string // raw, valid, enriched, internal, external
	group   string
	done    atomic.Int64 // lines routed or rejected
	log     watermill.LoggerAdapter
}

type baselineResult struct {
	Lines    int
	Took     time.Duration
	Commands int64
}

// run generates orders and processes them until lines lines are done or
// maxTime passes, and reports how many were done in how long.
func (b *baseline) run(ctx context.Context, catalog order.Catalog, lines int, maxTime time.Duration) (baselineResult, error) {
	sub := func() (*wmkafka.Subscriber, error) {
		sc := wmkafka.DefaultSaramaSubscriberConfig()
		sc.Consumer.Offsets.Initial = sarama.OffsetOldest
		return wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
			Brokers: b.brokers, Unmarshaler: wmkafka.DefaultMarshaler{}, ConsumerGroup: b.group,
			OverwriteSaramaConfig: sc,
		}, b.log)
	}
	pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{Brokers: b.brokers, Marshaler: wmkafka.DefaultMarshaler{}}, b.log)
	if err != nil {
		return baselineResult{}, fmt.Errorf("baseline publisher: %w", err)
	}
	defer pub.Close()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, b.log)
	if err != nil {
		return baselineResult{}, err
	}
	for i, h := range []struct {
		name string
		fn   func(context.Context, order.Line) (string, order.Line, string, error)
	}{{"validate", b.validate}, {"enrich", b.enrich}, {"route", b.route}} {
		s, err := sub()
		if err != nil {
			return baselineResult{}, fmt.Errorf("baseline subscriber: %w", err)
		}
		router.AddConsumerHandler("baseline_"+h.name, b.topics[i], s, func(msg *message.Message) error {
			var l order.Line
			if err := json.Unmarshal(msg.Payload, &l); err != nil {
				return nil // not in the baseline's workload
			}
			topic, out, st, err := h.fn(msg.Context(), l)
			if err != nil {
				return err
			}
			if topic != "" {
				payload, _ := json.Marshal(out)
				if err := pub.Publish(topic, message.NewMessage(uuid.NewString(), payload)); err != nil {
					return err
				}
			}
			if err := b.setStatus(msg.Context(), l.OrderID, st); err != nil {
				return err
			}
			if st == "routed" || st == "rejected" {
				b.done.Add(1)
			}
			return nil
		})
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(runCtx) }()
	<-router.Running()

	gen, err := order.NewGenerator(catalog, 0.03, 7)
	if err != nil {
		return baselineResult{}, err
	}
	start := time.Now()
	deadline := start.Add(maxTime)
	genDone := make(chan error, 1)
	var generated atomic.Int64
	go func() {
		id := int64(1)
		for generated.Load() < int64(lines) && time.Now().Before(deadline) && runCtx.Err() == nil {
			o := gen.Order(id)
			id++
			for _, l := range order.Flatten(o) {
				payload, _ := json.Marshal(l)
				if err := pub.Publish(b.topics[0], message.NewMessage(uuid.NewString(), payload)); err != nil {
					genDone <- err
					return
				}
				generated.Add(1)
			}
			if err := b.setStatus(runCtx, o.ID, "generated"); err != nil {
				genDone <- err
				return
			}
		}
		genDone <- nil
	}()
	var genErr error
	genRunning := true
	for {
		if n := b.done.Load(); (!genRunning && n >= generated.Load()) || time.Now().After(deadline) {
			break
		}
		select {
		case genErr = <-genDone:
			genRunning = false
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return baselineResult{}, ctx.Err()
		}
	}
	took := time.Since(start)
	done := b.done.Load()
	if err := router.Close(); err != nil {
		slog.Warn("baseline router close", "error", err)
	}
	<-routerDone
	if genRunning {
		<-genDone
	}
	if genErr != nil {
		return baselineResult{}, fmt.Errorf("baseline generator: %w", genErr)
	}
	if done == 0 {
		return baselineResult{}, errors.New("baseline routed no line")
	}
	return baselineResult{Lines: int(done), Took: took}, nil
}

func (b *baseline) setStatus(ctx context.Context, id int64, st string) error {
	_, err := b.db.Collection("order_status").UpdateOne(ctx, bson.D{{Key: "order_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: st}}}}, options.UpdateOne().SetUpsert(true))
	return err
}

func (b *baseline) validate(ctx context.Context, l order.Line) (string, order.Line, string, error) {
	n, err := b.db.Collection(metastore.FraudIPCollection).CountDocuments(ctx, bson.D{{Key: "ip_address", Value: l.IPAddress}})
	if err != nil {
		return "", l, "", err
	}
	if n > 0 {
		return "", l, "rejected", nil
	}
	return b.topics[1], l, "validated", nil
}

func (b *baseline) enrich(ctx context.Context, l order.Line) (string, order.Line, string, error) {
	var from, to metastore.Location
	loc := b.db.Collection(metastore.LocationCollection)
	if err := loc.FindOne(ctx, bson.D{{Key: "location_id", Value: l.FromLocation}}).Decode(&from); err != nil {
		return "", l, "", err
	}
	if err := loc.FindOne(ctx, bson.D{{Key: "location_id", Value: l.ToLocation}}).Decode(&to); err != nil {
		return "", l, "", err
	}
	l.FromLocationName, l.ToLocationName = from.Name, to.Name
	return b.topics[2], l, "enriched", nil
}

func (b *baseline) route(ctx context.Context, l order.Line) (string, order.Line, string, error) {
	var p metastore.Product
	if err := b.db.Collection(metastore.ProductCollection).FindOne(ctx, bson.D{{Key: "product_id", Value: l.ProductID}}).Decode(&p); err != nil {
		return "", l, "", err
	}
	l.RouteID = p.RouteID
	if p.RouteID == 1 {
		return b.topics[3], l, "routed", nil
	}
	return b.topics[4], l, "routed", nil
}

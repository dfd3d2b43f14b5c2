package metastore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// IDBlockCollection records the blocks of order ids handed out.
const IDBlockCollection = "order_id_blocks"

// IDBlockSize is the number of ids in a block.
const IDBlockSize = 1000

// Sequence hands out blocks of order ids that are unique across runs and
// across concurrent generators. A block is claimed by inserting its number
// under a unique _id: the insert either wins or fails with a duplicate key,
// and no read-modify-write is involved. (An $inc counter would be simpler,
// but the embedded MongoDB-wire server does not apply concurrent
// findAndModify calls atomically.)
type Sequence struct {
	coll *mongo.Collection
	next int64 // the block to try first; a hint, corrected by the database
}

// NewSequence returns the order id sequence of db.
func NewSequence(db *mongo.Database) *Sequence {
	return &Sequence{coll: db.Collection(IDBlockCollection)}
}

// Reserve claims the next free block and returns its first and last id.
func (s *Sequence) Reserve(ctx context.Context) (first, last int64, err error) {
	if s.next == 0 {
		var top struct {
			ID int64 `bson:"_id"`
		}
		err := s.coll.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&top)
		switch {
		case err == mongo.ErrNoDocuments:
			s.next = 1
		case err != nil:
			return 0, 0, fmt.Errorf("find the last order id block: %w", err)
		default:
			s.next = top.ID + 1
		}
	}
	for {
		block := s.next
		s.next++
		_, err := s.coll.InsertOne(ctx, bson.D{{Key: "_id", Value: block}, {Key: "claimed_at", Value: time.Now()}})
		if mongo.IsDuplicateKeyError(err) {
			continue // another generator took it; try the next one
		}
		if err != nil {
			return 0, 0, fmt.Errorf("claim order id block %d: %w", block, err)
		}
		return (block-1)*IDBlockSize + 1, block * IDBlockSize, nil
	}
}

package metastore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// VersionCollection holds one document whose version is raised by every
// `metadata load`. Running routers poll it, a find by a string _id that costs
// the same however much metadata or traffic there is, and re-read the
// metadata when it moved. FerretDB has no change streams, and a real MongoDB
// serves this read from its _id index.
const VersionCollection = "metadata_version"

const versionID = "metadata"

// BumpVersion tells running routers that the metadata changed: they re-read
// it within their poll interval.
func (s *Store) BumpVersion(ctx context.Context) error {
	_, err := s.db.Collection(VersionCollection).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: versionID}},
		bson.D{
			{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}},
			{Key: "$set", Value: bson.D{{Key: "changed_at", Value: time.Now().UTC()}}},
		},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("announce the metadata change: %w", err)
	}
	return nil
}

// Version returns the metadata version, 0 when nothing was ever loaded.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var doc struct {
		Version int64 `bson:"version"`
	}
	err := s.db.Collection(VersionCollection).FindOne(ctx, bson.D{{Key: "_id", Value: versionID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read metadata version: %w", err)
	}
	return doc.Version, nil
}

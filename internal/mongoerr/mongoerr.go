// Package mongoerr classifies MongoDB write errors the stores share.
package mongoerr

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// OnlyDuplicateKeys reports whether every write error of an unordered bulk
// insert is a duplicate key (E11000): the documents that failed were there
// already, written by another process or an earlier attempt.
func OnlyDuplicateKeys(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// DuplicateIndexes returns the indexes, in the documents given, of the
// writes of a bulk insert refused as duplicate keys, when those are its only
// errors; ok is false for any other error.
func DuplicateIndexes(err error) (idx []int, ok bool) {
	if !OnlyDuplicateKeys(err) {
		return nil, false
	}
	var bwe mongo.BulkWriteException
	errors.As(err, &bwe)
	for _, we := range bwe.WriteErrors {
		idx = append(idx, we.Index)
	}
	return idx, true
}

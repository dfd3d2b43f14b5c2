package handlers

import (
	"context"
	"fmt"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/order"
)

// Enrich adds the names of the line's from and to locations. A location id
// missing from the metadata (after one refresh) is a permanent error: the
// line goes to the poison queue and can be replayed once the location is
// loaded.
func Enrich(locations LocationNames) Processor {
	return func(ctx context.Context, line order.Line) (Outcome, error) {
		from, err := locationName(ctx, locations, "from_location", line.FromLocation)
		if err != nil {
			return Outcome{}, err
		}
		to, err := locationName(ctx, locations, "to_location", line.ToLocation)
		if err != nil {
			return Outcome{}, err
		}
		line.FromLocationName, line.ToLocationName = from, to
		return Outcome{Line: line}, nil
	}
}

func locationName(ctx context.Context, locations LocationNames, field string, id int64) (string, error) {
	name, ok, err := locations.LocationName(ctx, id)
	if err != nil {
		return "", fmt.Errorf("look up %s %d: %w", field, id, err)
	}
	if !ok {
		return "", failure.Permanent(failure.UnknownReference, fmt.Errorf("unknown %s %d: not in location_details", field, id))
	}
	return name, nil
}

package handlers

import (
	"context"
	"fmt"

	"github.com/orderflow/orderflow/failure"
	"github.com/orderflow/orderflow/order"
)

// InternalRouteID is the route of products handled internally; every other
// route is external.
const InternalRouteID = 1

// Route sends a line internal or external by its product's route, and adds
// the product's name, category and route. It also lists which lines of the
// order go external (external_lines), from the product ids every line
// carries, so that the delivery stage knows how many lines to wait for.
func Route(products ProductCatalog) Processor {
	return func(ctx context.Context, line order.Line) (Outcome, error) {
		p, ok, err := products.Product(ctx, line.ProductID)
		if err != nil {
			return Outcome{}, fmt.Errorf("look up product %d: %w", line.ProductID, err)
		}
		if !ok {
			return Outcome{}, failure.Permanent(failure.UnknownReference, fmt.Errorf("unknown product_id %d: not in product_details", line.ProductID))
		}
		line.RouteID, line.ProductName, line.Category = p.RouteID, p.ProductName, p.Category
		line.Route = routeOf(p.RouteID)
		line.ExternalLines = nil
		for i, id := range line.OrderProductIDs {
			if i == line.LineIndex {
				if line.Route == order.RouteExternal {
					line.ExternalLines = append(line.ExternalLines, i)
				}
				continue
			}
			// A sibling whose product is unknown fails on its own; it is
			// not waited for.
			if sib, ok, err := products.Product(ctx, id); err == nil && ok && routeOf(sib.RouteID) == order.RouteExternal {
				line.ExternalLines = append(line.ExternalLines, i)
			}
		}
		return Outcome{Line: line, Route: line.Route}, nil
	}
}

func routeOf(routeID int) string {
	if routeID == InternalRouteID {
		return order.RouteInternal
	}
	return order.RouteExternal
}

package status

import (
	"context"
	"errors"
	"time"
)

// pruneOpen forgets the open orders that saw no line since before.
func (v *View) pruneOpen(before time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for id, o := range v.openOrders {
		if o.last.Before(before) {
			delete(v.openOrders, id)
		}
	}
}

// Run resolves partial stages that stayed partial for ResolveAfter, until ctx
// ends.
func (v *View) Run(ctx context.Context) {
	t := time.NewTicker(min(v.cfg.ResolveAfter/4, time.Second))
	defer t.Stop()
	lastUpkeep := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.pruneOpen(time.Now().Add(-10 * time.Minute))
			if time.Since(lastUpkeep) >= upkeepInterval {
				lastUpkeep = time.Now()
				if err := v.upkeep(ctx); err != nil && ctx.Err() == nil {
					v.cfg.Logger.Warn("order_status: upkeep of counters and open orders failed; will retry", "error", err)
				}
			}
			if err := v.resolve(ctx); err != nil && ctx.Err() == nil {
				v.cfg.Logger.Warn("order_status: resolving partly seen orders failed; will retry", "error", err)
			}
		}
	}
}

// resolve reads the orders whose stages stayed partial and writes the status
// their records give.
func (v *View) resolve(ctx context.Context) error {
	if v.cfg.Resolve == nil {
		return nil
	}
	v.mu.Lock()
	var ids []int64
	seen := map[int64]bool{}
	for k, p := range v.partial {
		if time.Since(p.since) >= v.cfg.ResolveAfter && !seen[k.order] {
			seen[k.order] = true
			ids = append(ids, k.order)
		}
		if len(ids) >= 100 {
			break
		}
	}
	v.mu.Unlock()
	var errs []error
	for _, id := range ids {
		o, err := v.cfg.Resolve(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var t *transition
		v.mu.Lock()
		var done []partialKey
		for k := range v.partial {
			if k.order == id {
				done = append(done, k)
			}
		}
		if o != nil && o.Status != Pending {
			below := o.Status.Rank()
			if !o.Status.IsStage() {
				below = Routed.Rank() + 1 // a failed or rejected order: its stages are not known here
				for _, l := range o.Progress {
					below = min(below, l.reached+1)
				}
			}
			external := o.Status == Delivered
			for _, l := range o.Progress {
				external = external || l.Route == "external"
			}
			t = &transition{order: id, step: step(o.Status), done: done, after: below - 1, external: external,
				docs: v.chain(id, o.Status, o.Lines, o.Reason, below, time.Now())}
		} else {
			for _, k := range done {
				delete(v.partial, k)
			}
		}
		v.mu.Unlock()
		if t == nil {
			continue
		}
		if err := v.write(ctx, []transition{*t}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

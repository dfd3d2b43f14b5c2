package order

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeLine checks the strict decoder against encoding/json: whatever it
// accepts, encoding/json reads the same way, and it survives a round trip
// through Encode. Whatever it rejects, it rejects with an InvalidLineError.
func FuzzDecodeLine(f *testing.F) {
	l := sampleLine()
	f.Add(Encode(l))
	l.FromLocationName, l.ToLocationName, l.Route, l.RouteID, l.ExternalLines = "a\"b", "\u00e9", RouteExternal, 2, []int{0, 1}
	f.Add(Encode(l))
	f.Add([]byte(`{"order_id":1,"ip_address":{"$ne":null}}`))
	f.Add([]byte(`{"order_id":1e3}`))
	f.Add([]byte(`{"time":"\u0032"}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeLine(data)
		if err != nil {
			var inv *InvalidLineError
			if !errors.As(err, &inv) {
				t.Fatalf("error %v is not an InvalidLineError", err)
			}
			return
		}
		var std Line
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("accepted %q, but encoding/json rejects it: %v", data, err)
		}
		if std.OrderProductIDs == nil {
			std.OrderProductIDs = []int64{}
		}
		if !reflect.DeepEqual(got, std) {
			t.Fatalf("decoders disagree on %q:\n ours %+v\n std  %+v", data, got, std)
		}
		again, err := DecodeLine(Encode(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip of %q failed: %v\n%+v\n%+v", data, err, again, got)
		}
	})
}

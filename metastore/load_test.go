package metastore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBundledSampleIsGenerated(t *testing.T) {
	for name, want := range SampleFiles() {
		got, err := BundledSample(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("sample/%s differs from SampleFiles(): run `go generate ./metastore`", name)
		}
	}
	ds, err := SampleDataset()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Products) != 500 || len(ds.Locations) != 120 || len(ds.FraudIPs) != 500 {
		t.Fatalf("sample has %d products, %d locations, %d fraud IPs", len(ds.Products), len(ds.Locations), len(ds.FraudIPs))
	}
	routes := map[int]int{}
	for _, p := range ds.Products {
		routes[p.Value.RouteID]++
	}
	if routes[1] == 0 || routes[2] == 0 || routes[3] == 0 {
		t.Fatalf("sample routes %v: want internal and external products", routes)
	}
}

func TestParseFormats(t *testing.T) {
	cases := map[string]string{
		"array": `[
  {"product_id": 1000, "product_name": "a", "route_id": 1, "category": "Toys"},
  {"product_id": 1001, "product_name": "b", "route_id": 2, "category": "Home"}
]`,
		"lines": `{"product_id": 1000, "product_name": "a", "route_id": 1, "category": "Toys"}

{"product_id": 1001, "product_name": "b", "route_id": 2, "category": "Home"}
`,
		"mongoexport canonical": `{"_id":{"$oid":"5f0a1b2c3d4e5f6a7b8c9d0e"},"product_id":{"$numberInt":"1000"},"product_name":"a","route_id":{"$numberInt":"1"},"category":"Toys"}
{"_id":{"$oid":"5f0a1b2c3d4e5f6a7b8c9d0f"},"product_id":{"$numberLong":"1001"},"product_name":"b","route_id":{"$numberDouble":"2.0"},"category":"Home"}`,
		"mongoexport jsonArray": `[{"_id":{"$oid":"5f0a1b2c3d4e5f6a7b8c9d0e"},"product_id":1000,"product_name":"a","route_id":1,"category":"Toys"},
{"_id":{"$oid":"5f0a1b2c3d4e5f6a7b8c9d0f"},"product_id":1001.0,"product_name":"b","route_id":2,"category":"Home"}]`,
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			ds, err := Parse("products.json", strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			if len(ds.Products) != 2 || ds.Products[1].Value != (Product{1001, "b", 2, "Home"}) {
				t.Fatalf("parsed %+v", ds.Products)
			}
		})
	}
}

func TestParseMixedAndExtraLocationFields(t *testing.T) {
	text := `{"ip_address":"1.2.3.4"}
{"location_id":1,"location":{"coordinates":[-73.8,40.8]},"logistic_id":"1","name":"Morris Park Bake Shop"}
{"ip_address":"::ffff:5.6.7.8"}`
	ds, err := Parse("mixed.json", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.FraudIPs) != 2 || ds.FraudIPs[1].Value.IPAddress != "5.6.7.8" {
		t.Fatalf("fraud %+v", ds.FraudIPs)
	}
	if len(ds.Locations) != 1 || len(ds.Locations[0].Value.Extra) != 2 {
		t.Fatalf("locations %+v", ds.Locations)
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, text string
		line       int
		problem    string
	}{
		{"python dict", "{'product_id': 1000, 'product_name': 'x', 'route_id': 1, 'category': 'Grocery'}", 1, "Python dict"},
		{"bad json on line 3", "{\"ip_address\":\"1.2.3.4\"}\n\n{\"ip_address\": }\n", 3, "invalid JSON"},
		{"bad ip", "{\"ip_address\":\"1.2.3.4\"}\n{\"ip_address\":\"1.2.3\"}", 2, "not an IP address"},
		{"string id in array", "[\n {\"location_id\":1,\"name\":\"a\"},\n {\"location_id\":\"2\",\"name\":\"b\"}\n]", 3, "location_id must be an integer, got a string"},
		{"missing name", `{"location_id":1}`, 1, `missing field "name"`},
		{"unknown product field", `{"product_id":1,"product_name":"a","route_id":1,"category":"c","price":3}`, 1, `unknown field "price"`},
		{"zero route", `{"product_id":1,"product_name":"a","route_id":0,"category":"c"}`, 1, "route_id"},
		{"unknown shape", `{"name":"x"}`, 1, "no ip_address, location_id or product_id"},
		{"conflicting duplicate", "{\"location_id\":1,\"name\":\"a\"}\n{\"location_id\":1,\"name\":\"b\"}", 2, "defined differently at f.json:1"},
		{"empty", "\n\n", 0, "no documents"},
		{"operator as ip", `{"ip_address":{"$ne":null}}`, 1, "ip_address must be a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.json", strings.NewReader(tc.text))
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a LineError", err)
			}
			if le.File != "f.json" || le.Line != tc.line || !strings.Contains(le.Problem, tc.problem) {
				t.Fatalf("got %q, want f.json line %d with %q", err, tc.line, tc.problem)
			}
		})
	}
}

func TestParseFilesStopsAtFirstBadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(good, []byte(`{"ip_address":"1.2.3.4"}`), 0o644)
	os.WriteFile(bad, []byte("{\"ip_address\":\"1.2.3.4\"}\n{\"ip_address\":42}"), 0o644)
	ds, err := ParseFiles(good, bad)
	if err == nil || !strings.Contains(err.Error(), "bad.json:2:") {
		t.Fatalf("got %v", err)
	}
	if ds.Len() != 0 {
		t.Fatal("a failed parse must return no data, so nothing is half-loaded")
	}
}

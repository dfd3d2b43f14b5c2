package metastore

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

//go:generate go run ./internal/gensample sample

// The bundled sample metadata: the output of SampleFiles, kept in the
// repository so users can read and copy it.
//
//go:embed sample/*.json
var sampleFS embed.FS

// Sample file names.
const (
	SampleFraudIPs  = "fraud_ip.json"
	SampleLocations = "location_details.json"
	SampleProducts  = "product_details.json"
)

// SampleDataset returns the bundled sample metadata, parsed.
func SampleDataset() (Dataset, error) {
	var ds Dataset
	for _, name := range []string{SampleFraudIPs, SampleLocations, SampleProducts} {
		data, err := sampleFS.ReadFile("sample/" + name)
		if err != nil {
			return Dataset{}, fmt.Errorf("read bundled sample: %w", err)
		}
		if err := ds.parse("sample/"+name, bytes.NewReader(data)); err != nil {
			return Dataset{}, err
		}
	}
	return ds, ds.checkDuplicates()
}

// BundledSample returns the bytes of one bundled sample file.
func BundledSample(name string) ([]byte, error) { return sampleFS.ReadFile("sample/" + name) }

// SampleFiles generates the sample metadata, deterministically: 500 products
// on three routes, 120 locations and 500 fraud IPs, as JSON lines in the shape
// mongoexport writes.
func SampleFiles() map[string][]byte {
	r := splitmix(20200629)
	var products, locations, fraud bytes.Buffer

	categories := []string{"Grocery", "Baby", "Home", "Furniture", "Young Adults", "Women", "Men",
		"Household Essentials", "Kids", "Shoes", "Toys", "Electronics"}
	for id := int64(1000); id < 1500; id++ {
		route := 1
		switch x := r.intn(100); {
		case x >= 90:
			route = 3
		case x >= 55:
			route = 2
		}
		writeLine(&products, Product{
			ProductID:   id,
			ProductName: adjectives[r.intn(len(adjectives))] + "-" + colors[r.intn(len(colors))] + "-" + animals[r.intn(len(animals))],
			RouteID:     route,
			Category:    categories[r.intn(len(categories))],
		})
	}
	type geo struct {
		Coordinates [2]float64 `json:"coordinates"`
	}
	for id := int64(1); id <= 120; id++ {
		writeLine(&locations, struct {
			LocationID int64  `json:"location_id"`
			Location   geo    `json:"location"`
			LogisticID string `json:"logistic_id"`
			Name       string `json:"name"`
		}{
			LocationID: id,
			Location:   geo{Coordinates: [2]float64{-74.25 + float64(r.intn(60000))/100000, 40.5 + float64(r.intn(40000))/100000}},
			LogisticID: fmt.Sprint(1 + (id-1)%10),
			Name:       placeWords[r.intn(len(placeWords))] + " " + placeNouns[r.intn(len(placeNouns))] + " " + placeKinds[r.intn(len(placeKinds))],
		})
	}
	seen := map[string]bool{}
	for len(seen) < 500 {
		ip := fmt.Sprintf("%d.%d.%d.%d", 1+r.intn(223), r.intn(256), r.intn(256), 1+r.intn(254))
		if seen[ip] || ip[:3] == "10." || ip[:4] == "127." {
			continue
		}
		seen[ip] = true
		writeLine(&fraud, FraudIP{IPAddress: ip})
	}
	return map[string][]byte{
		SampleProducts:  products.Bytes(),
		SampleLocations: locations.Bytes(),
		SampleFraudIPs:  fraud.Bytes(),
	}
}

// WriteSampleFiles writes SampleFiles into dir.
func WriteSampleFiles(dir string) error {
	for name, data := range SampleFiles() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write sample file: %w", err)
		}
	}
	return nil
}

func writeLine(b *bytes.Buffer, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // the sample types always marshal
	}
	b.Write(data)
	b.WriteByte('\n')
}

// splitmix is SplitMix64: a tiny generator whose output is fixed by its
// definition, so the sample does not change with the Go version.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (s *splitmix) intn(n int) int { return int(s.next() % uint64(n)) }

var (
	adjectives = []string{"skimpy", "pretty", "shaggy", "cloudy", "foggy", "nippy", "muzzy", "hilly", "chummy",
		"slimy", "chewy", "breezy", "jumpy", "frumpy", "muggy", "wheezy", "grumpy", "homey", "leaky", "bluesy",
		"flaky", "squirrely", "sunny", "crabby", "squeaky", "hasty", "randy", "tacky", "shaky", "stealthy"}
	colors = []string{"indigo", "malachite", "rose", "cobalt", "orange", "brass", "cornflower", "olivine",
		"zucchini", "cerise", "buff", "chocolate", "cinnabar", "pear", "magenta", "burgundy", "purple",
		"persimmon", "taupe", "beige", "firebrick", "carmine", "silver", "puce", "teal", "bronze", "thistle"}
	animals = []string{"frigatebird", "barb", "moose", "shrimp", "mouse", "badger", "setter", "balinese",
		"albatross", "rattlesnake", "cat", "flamingo", "goose", "dog", "emu", "wombat", "dachsbracke",
		"vulture", "bulldog", "wolfhound", "lemming", "wrasse", "chinchilla", "rottweiler", "quetzal", "beaver"}
	placeWords = []string{"Morris", "Riviera", "Golden", "Harbor", "Park", "Union", "Lexington", "Broadway",
		"Hudson", "Bay", "Ocean", "Liberty", "Empire", "Queens", "Atlantic", "Madison", "Canal", "Fulton"}
	placeNouns = []string{"Bake", "Deli", "Pizza", "Bagel", "Grill", "Garden", "Tavern", "Diner", "Market",
		"Kitchen", "Cafe", "Bistro"}
	placeKinds = []string{"Shop", "House", "Catering", "Restaurant", "Club", "Corner", "Hall", "Express"}
)

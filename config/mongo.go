package config

import (
	"net/url"
	"time"
)

// MongoConfig says how to reach MongoDB.
type MongoConfig struct {
	// URI is the connection string; credentials belong in Username and the
	// ORDERFLOW_MONGODB_PASSWORD variable, not in the URI of a file.
	URI           string    `yaml:"uri"`
	Database      string    `yaml:"database"`
	Username      string    `yaml:"username"`
	Password      string    `yaml:"password" secret:"true"`
	AuthSource    string    `yaml:"auth_source"`
	AuthMechanism string    `yaml:"auth_mechanism"`
	Timeout       Duration  `yaml:"timeout"`
	TLS           TLSConfig `yaml:"tls"`
	// MaxPoolSize bounds the client's connections; 0 is the driver's
	// default (100). Not a setting of the file: the API's client is made
	// with http.mongodb_pool.
	MaxPoolSize int `yaml:"-"`
	// WriteConcern is "majority" (the default: a status write is
	// acknowledged once a majority of the replica set has it in its
	// journal, so a mongod crash cannot lose records whose offsets were
	// committed) or "1" (the primary alone, faster, less safe).
	WriteConcern string `yaml:"write_concern"`
}

func (c *MongoConfig) setDefaults() {
	defStr(&c.Database, "orderflow")
	defDur(&c.Timeout, 10*time.Second)
	defStr(&c.WriteConcern, "majority")
}

// Validate checks the section, with keys relative to it.
func (c MongoConfig) Validate() error { return validateSection(c) }

func (c MongoConfig) validate(p *problems) {
	if c.URI != "" {
		if u, err := url.Parse(c.URI); err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
			p.add("uri", "is not a mongodb:// or mongodb+srv:// URI")
		}
	}
	if c.WriteConcern != "majority" && c.WriteConcern != "1" {
		p.add("write_concern", "%q is not majority or 1", c.WriteConcern)
	}
	if c.Database == "" {
		p.add("database", "is empty")
	}
}

package config

import (
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Masked returns the configuration as YAML with every secret replaced by
// "****", for `orderflow config print`.
func (c *Config) Masked() ([]byte, error) {
	masked := *c
	masked.Kafka.SASL.Password = mask(c.Kafka.SASL.Password)
	masked.MongoDB.Password = mask(c.MongoDB.Password)
	masked.MongoDB.URI = MaskURI(c.MongoDB.URI)
	masked.Delivery.Partners = append([]PartnerConfig(nil), c.Delivery.Partners...)
	for i := range masked.Delivery.Partners {
		masked.Delivery.Partners[i].Sink.Token = mask(masked.Delivery.Partners[i].Sink.Token)
		masked.Delivery.Partners[i].Sink.URL = MaskURI(masked.Delivery.Partners[i].Sink.URL)
	}
	out, err := yaml.Marshal(&masked)
	if err != nil {
		return nil, fmt.Errorf("print configuration: %w", err)
	}
	return out, nil
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "****"
}

// MaskURI hides the password of a connection string.
func MaskURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return uri
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "****")
		return strings.Replace(u.String(), "%2A%2A%2A%2A", "****", 1)
	}
	return uri
}

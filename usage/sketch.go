package usage

import (
	"fmt"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// RelativeAccuracy is the latency sketches' guarantee: a percentile read
// from one is within 1 % of the latency actually at that rank, however
// many sketches were merged into it.
const RelativeAccuracy = 0.01

// maxBins bounds a sketch's memory (8 bytes a bin). At 1 % accuracy 2048
// bins span latencies from a microsecond to beyond a year, so the bound
// never costs accuracy for real latencies.
const maxBins = 2048

func newSketch() *ddsketch.DDSketch {
	s, err := ddsketch.LogCollapsingLowestDenseDDSketch(RelativeAccuracy, maxBins)
	if err != nil {
		panic(err) // only for an invalid accuracy, a constant
	}
	return s
}

func storeProvider() store.Store { return store.NewCollapsingLowestDenseStore(maxBins) }

// encodeSketch serialises a sketch with its index mapping, so a stored
// sketch stays readable if the accuracy is changed later.
func encodeSketch(s *ddsketch.DDSketch) []byte {
	var b []byte
	s.Encode(&b, false)
	return b
}

// DecodeSketch reads a sketch that encodeSketch wrote.
func DecodeSketch(b []byte) (*ddsketch.DDSketch, error) {
	s, err := ddsketch.DecodeDDSketch(b, storeProvider, nil)
	if err != nil {
		return nil, fmt.Errorf("usage: corrupt latency sketch: %w", err)
	}
	return s, nil
}

// MergeSketches is the keyplane.LatencyMerge the stores use: it adds the
// latencies of add to those of stored.
func MergeSketches(stored, add []byte) ([]byte, error) {
	s, err := DecodeSketch(stored)
	if err != nil {
		return nil, err
	}
	if err := s.DecodeAndMergeWith(add); err != nil {
		return nil, fmt.Errorf("usage: corrupt latency sketch: %w", err)
	}
	return encodeSketch(s), nil
}

// Package shop is the domain the eventstore tests dispatch commands to: a
// shop that sells numbered editions of items with a limited stock. It
// imports only eventstore, so the store's tests compile nothing else.
//
// It has one rule of each kind the store must keep:
//
//   - capacity across streams: an item's stock is bought by many
//     customers, each sale appended to the customer's own stream, and the
//     editions sold are numbered 1..Stock with no gap and no oversell;
//   - uniqueness across streams: a username is claimed once, whichever
//     customer's stream claims it;
//   - stream revision: an item is listed once, on its own stream.
//
// ItemSold is at version 2 with an upcaster from version 1, so tests see
// a versioned event on the dispatch path.
package shop

import (
	"errors"

	"github.com/factos-go/factos/eventstore"
)

// Event is the union of the shop's events.
type Event interface{ shopEvent() }

// ItemListed puts an item on sale with a limited stock.
type ItemListed struct {
	Item  string `json:"item"`
	Stock int    `json:"stock"`
}

// ItemSold records the sale of one edition of an item. Editions are
// numbered from 1 in the order they were sold.
//
// Version 2 renamed the version 1 field "buyer" to "customer".
type ItemSold struct {
	Item     string `json:"item"`
	Customer string `json:"customer"`
	Edition  int    `json:"edition"`
}

// UsernameClaimed gives a username to a customer.
type UsernameClaimed struct {
	Customer string `json:"customer"`
	Username string `json:"username"`
}

func (ItemListed) shopEvent()      {}
func (ItemSold) shopEvent()        {}
func (UsernameClaimed) shopEvent() {}

// Event type names as stored.
const (
	TypeItemListed      = "ItemListed"
	TypeItemSold        = "ItemSold"
	TypeUsernameClaimed = "UsernameClaimed"
)

// ItemTag, CustomerTag and UsernameTag are the tags the rules query.
func ItemTag(item string) string         { return "item:" + item }
func CustomerTag(customer string) string { return "customer:" + customer }
func UsernameTag(name string) string     { return "username:" + name }

// ItemStream holds an item's listing; CustomerStream a customer's
// purchases and username.
func ItemStream(item string) string         { return "item-" + item }
func CustomerStream(customer string) string { return "customer-" + customer }

// The shop's rules reject commands with these errors.
var (
	ErrAlreadyListed = errors.New("item already listed")
	ErrNotListed     = errors.New("item not listed")
	ErrSoldOut       = errors.New("sold out")
	ErrUsernameTaken = errors.New("username taken")
)

// itemSoldV1 is ItemSold as version 1 stored it, frozen.
type itemSoldV1 struct {
	Item    string `json:"item"`
	Buyer   string `json:"buyer"`
	Edition int    `json:"edition"`
}

// NewCodec returns the JSON codec of the shop's events.
func NewCodec() *eventstore.JSONCodec[Event] {
	c := eventstore.NewJSONCodec[Event]()
	eventstore.RegisterJSON(c, eventstore.JSONType[ItemListed]{
		Name: TypeItemListed,
		Tags: func(e ItemListed) []string { return []string{ItemTag(e.Item)} },
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[ItemSold]{
		Name:    TypeItemSold,
		Version: 2,
		Upcasters: []eventstore.Upcaster{eventstore.UpcastJSON(1, func(old itemSoldV1) (ItemSold, error) {
			return ItemSold{Item: old.Item, Customer: old.Buyer, Edition: old.Edition}, nil
		})},
		Tags: func(e ItemSold) []string { return []string{ItemTag(e.Item), CustomerTag(e.Customer)} },
	})
	eventstore.RegisterJSON(c, eventstore.JSONType[UsernameClaimed]{
		Name: TypeUsernameClaimed,
		Tags: func(e UsernameClaimed) []string { return []string{CustomerTag(e.Customer), UsernameTag(e.Username)} },
	})
	return c
}

// ListItem puts an item on sale.
type ListItem struct {
	Item  string
	Stock int
}

// BuyItem buys one edition of an item for a customer.
type BuyItem struct {
	Item     string
	Customer string
}

// ClaimUsername claims a username for a customer.
type ClaimUsername struct {
	Customer string
	Username string
}

// Stock is what a purchase decides on: whether the item is listed, its
// stock and how many editions are sold.
type Stock struct {
	Listed bool
	Total  int
	Sold   int
}

// Handlers dispatch the shop's commands with one codec.
type Handlers struct {
	// Codec encodes and decodes the events of every handler.
	Codec *eventstore.JSONCodec[Event]

	// List is a stream-revision dispatch: the item's stream is its whole
	// context.
	List eventstore.Handler[ListItem, Event, bool]

	// Buy's context is the item's listing and every sale of it, in any
	// customer's stream; the sale is appended to the buyer's stream.
	Buy eventstore.Handler[BuyItem, Event, Stock]

	// Claim's context is every claim of the username, in any customer's
	// stream.
	Claim eventstore.Handler[ClaimUsername, Event, bool]
}

// New returns the shop's handlers on a new codec.
func New() Handlers {
	codec := NewCodec()
	return Handlers{
		Codec: codec,
		List: eventstore.Handler[ListItem, Event, bool]{
			Codec:   codec,
			Stream:  func(c ListItem) string { return ItemStream(c.Item) },
			Decider: once(ErrAlreadyListed, func(c ListItem) ItemListed { return ItemListed(c) }),
		},
		Buy: eventstore.Handler[BuyItem, Event, Stock]{
			Codec:  codec,
			Stream: func(c BuyItem) string { return CustomerStream(c.Customer) },
			Query: func(c BuyItem) eventstore.Query {
				return eventstore.NewQuery(eventstore.TypesAndTags([]string{TypeItemListed, TypeItemSold}, ItemTag(c.Item)))
			},
			Decider: eventstore.Decider[BuyItem, Event, Stock]{Evolve: evolveStock, Decide: decideBuy},
		},
		Claim: eventstore.Handler[ClaimUsername, Event, bool]{
			Codec:  codec,
			Stream: func(c ClaimUsername) string { return CustomerStream(c.Customer) },
			Query: func(c ClaimUsername) eventstore.Query {
				return eventstore.NewQuery(eventstore.TypesAndTags([]string{TypeUsernameClaimed}, UsernameTag(c.Username)))
			},
			Decider: once(ErrUsernameTaken, func(c ClaimUsername) UsernameClaimed { return UsernameClaimed(c) }),
		},
	}
}

// once decides a command that succeeds once per context: it produces the
// event T, and is rejected with err if the context already holds a T.
func once[C any, T Event](err error, event func(C) T) eventstore.Decider[C, Event, bool] {
	return eventstore.Decider[C, Event, bool]{
		Evolve: func(done bool, e Event) bool { _, ok := e.(T); return done || ok },
		Decide: func(done bool, c C) ([]Event, error) {
			if done {
				return nil, err
			}
			return []Event{event(c)}, nil
		},
	}
}

func evolveStock(s Stock, e Event) Stock {
	switch e := e.(type) {
	case ItemListed:
		s.Listed, s.Total = true, e.Stock
	case ItemSold:
		s.Sold++
	}
	return s
}

func decideBuy(s Stock, c BuyItem) ([]Event, error) {
	switch {
	case !s.Listed:
		return nil, ErrNotListed
	case s.Sold >= s.Total:
		return nil, ErrSoldOut
	}
	return []Event{ItemSold{Item: c.Item, Customer: c.Customer, Edition: s.Sold + 1}}, nil
}

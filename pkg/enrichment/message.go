package enrichment

import (
	"errors"

	"github.com/shopspring/decimal"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/domain/message"
	"github.com/leadflow/leadflow/pkg/domain/person"
)

// Compose formats the message of an enrichment (MESSAGE.md).
func Compose(in events.LeadEnriched, multiplier decimal.Decimal) (string, error) {
	subjects := make([]message.Subject, 0, len(in.Persons))
	for _, p := range in.Persons {
		var parsed *person.Person
		var err error
		if len(p.Person) > 0 {
			parsed, err = person.ParseSummary(p.Person)
		} else {
			parsed, err = person.Parse(p.Payload) // an event published before the summary
		}
		if err != nil {
			return "", failure.Permanent("notifier.payload", err)
		}
		subjects = append(subjects, message.Subject{Person: parsed, Role: role(p.Role)})
	}
	if len(subjects) == 0 {
		return "", failure.Permanent("notifier.compose", errNoPersons)
	}
	return message.Format(message.Input{Subjects: subjects, LeadPhone: in.Phone, LeadEmail: in.Email, Multiplier: multiplier}), nil
}

var errNoPersons = errors.New("enriched event without persons")

func role(r events.Role) message.Role {
	switch r {
	case events.RoleBoth:
		return message.FoundByBoth
	case events.RoleEmail:
		return message.FoundByEmail
	}
	return message.FoundByPhone
}

package money_test

import (
	"fmt"

	"github.com/leadflow/leadflow/pkg/domain/money"
)

func Example() {
	mult, _ := money.ParseMultiplier(money.DefaultMultiplier)
	renda, _ := money.Parse("8500,50")
	fmt.Println(money.Format(money.Multiply(renda, mult)))
	fmt.Println(money.ScaleRange("De R$ 1.630 até R$ 4.082", mult))
	// Output:
	// 16.150,95
	// De R$ 3.097,00 até R$ 7.755,80
}

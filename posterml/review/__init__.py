"""The review page: the dealer's assistant checks and labels posters in a browser, and each
save lands in the dataset through ``posterml add``'s own code."""

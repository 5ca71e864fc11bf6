"""Federated variant of the loop (issue 17): devices adapt the production model's head on their
own auto-labelled moments and send only head weights; a Flower server averages them (FedAvg) and
the new head becomes a candidate that goes through the same evaluation gate and TUF release."""

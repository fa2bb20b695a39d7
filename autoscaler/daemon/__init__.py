"""The live daemon: event sources -> the decision core -> an actuator, on a loop clock."""

"""The command's earlier name, kept so scripts and notes that use it go on working."""

from .make_standin_encoders import Command as MakeStandinEncoders


class Command(MakeStandinEncoders):
    help = "Same as make_standin_encoders (its earlier name)."
